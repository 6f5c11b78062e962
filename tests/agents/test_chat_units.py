"""The chat body's mapping to Ollama, and admission from readings, without a server."""

from __future__ import annotations

import pytest

from worker.agents import Agent
from worker.http.chat import parse_chat
from worker.http.errors import ApiError
from worker.sampling.admission import refusal
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry

USER = [{"role": "user", "content": "hello"}]
AGENT = Agent(name="a", model="m:1", system="Be brief.", max_tokens=100, temperature=0.5)


def test_defaults_and_caps_come_from_the_agent() -> None:
    chat = parse_chat({"messages": USER}, AGENT)
    assert chat.stream is False
    assert chat.messages == ({"role": "system", "content": "Be brief."}, *USER)
    assert chat.options == {"num_predict": 100, "temperature": 0.5}
    chat = parse_chat({"messages": USER, "max_tokens": 5, "temperature": 0, "stop": "x"}, AGENT)
    assert chat.options == {"num_predict": 5, "temperature": 0.0, "stop": ["x"]}
    assert parse_chat({"messages": USER, "max_tokens": 10**6}, AGENT).options["num_predict"] == 100


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "invalid_messages"),
        ({"messages": [{"role": "user", "content": "   "}]}, "invalid_messages"),
        ({"messages": USER, "top_p": 2}, "invalid_top_p"),
        ({"messages": USER, "seed": 1.5}, "invalid_seed"),
        ({"messages": USER, "max_tokens": True}, "invalid_max_tokens"),
        ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "invalid_stop"),
    ],
)
def test_bad_bodies_are_400_with_a_stable_code(body: dict, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat(body, AGENT)
    assert (caught.value.status, caught.value.code) == (400, code)


def view(name: str, data: object, status: str = "ok") -> SourceView:
    return SourceView(name, status, None if status == "ok" else "down", data, 0.1, 1.0)  # type: ignore[arg-type]


GPUS = GpuReport("560", (GpuReading(0, "H100"),))
MODELS = Catalogue("0.12.6", (ModelEntry("m:1"), ModelEntry("plain:latest")))


def test_admission_reasons() -> None:
    assert refusal((view("nvml", GPUS), view("ollama", MODELS)), "m:1") is None
    assert refusal((view("nvml", GPUS), view("ollama", MODELS)), "plain") is None
    cases = [
        ((view("nvml", None, "unavailable"), view("ollama", MODELS)), "m:1", "gpu_unfit"),
        ((view("nvml", GPUS, "stale"), view("ollama", MODELS)), "m:1", "gpu_unfit"),
        ((view("nvml", GpuReport("560", ())), view("ollama", MODELS)), "m:1", "gpu_unfit"),
        ((view("nvml", GPUS), view("ollama", None, "unavailable")), "m:1", "ollama_unavailable"),
        ((view("nvml", GPUS), view("ollama", MODELS, "stale")), "m:1", "ollama_unavailable"),
        ((view("nvml", GPUS), view("ollama", MODELS)), "other:7b", "model_not_on_disk"),
    ]
    for views, model, code in cases:
        refused = refusal(views, model)
        assert refused is not None and refused.code == code and refused.retry_after > 0


def test_a_lost_or_critical_gpu_refuses_jobs_and_a_warning_does_not() -> None:
    def refused(gpus: GpuReport) -> str | None:
        answer = refusal((view("nvml", gpus), view("ollama", MODELS)), "m:1")
        return None if answer is None else f"{answer.code}: {answer.reason}"

    lost = GpuReport("560", (GpuReading(0), GpuReading(1, error="GPU is lost")))
    assert refused(lost) == "gpu_unfit: nvml: GPU 1: GPU is lost"
    critical = GpuReport("560", (GpuReading(0, verdict="critical", verdict_reasons=("xid 79",)),))
    assert refused(critical) == "gpu_unfit: nvml: GPU 0: critical: xid 79"
    warning = GpuReport("560", (GpuReading(0, verdict="warning", verdict_reasons=("hot",)),))
    assert refused(warning) is None
