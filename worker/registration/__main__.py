"""`python -m worker.registration`: the container's one registrar process."""

import sys

from worker.registration.process import main

sys.exit(main())
