"""`python -m worker.sampling`: the container's one sampler process."""

import sys

from worker.sampling.process import main

sys.exit(main())
