"""A backend's setup and teardown hooks (what the run tells it first) and the reusable workspace."""

import json

from operators.backends import Workspace
from operators.core.device import Device
from operators.rope import MAX_POSITION
from operators.run import EXIT_PASS, EXIT_USAGE, main

HOOKED_BACKEND = '''
import json
from dataclasses import replace
from operators.backends import load_backend

EVENTS = {events!r}

def record(event):
    with open(EVENTS, "a") as file:
        file.write(json.dumps(event) + "\\n")

def backend(device):
    native = load_backend("native", device)
    swiglu = native.kernel("swiglu")

    def setup(context):
        {setup_body}
        record({{"event": "setup", "device": context.device.value, "operators": list(context.operators),
                 "max_position": context.max_position, "stream": context.stream}})

    def counted(**arguments):
        record({{"event": "call"}})
        swiglu(**arguments)

    hooked = native.with_kernels("hooked", {{"swiglu": counted}})
    return replace(hooked, setup=setup, teardown=lambda: record({{"event": "teardown"}}))
'''


def write_backend(tmp_path, monkeypatch, module: str, setup_body: str = "pass"):
    """A module of its own per test (an imported module is not imported again)."""
    events = tmp_path / "events.jsonl"
    (tmp_path / f"{module}.py").write_text(HOOKED_BACKEND.format(events=str(events), setup_body=setup_body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return events


def test_setup_hears_the_run_before_the_first_call_and_teardown_follows_the_last(harness, tmp_path, monkeypatch,
                                                                                capsys):
    events = write_backend(tmp_path, monkeypatch, "hooked_backend")
    code = main(["--device", harness.device.value, "--backend", "hooked_backend", "--operators", "swiglu,rms_norm",
                 "--dtypes", "f32", "--examples", "2", "--no-contract"])
    assert code == EXIT_PASS, capsys.readouterr().err
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert recorded[0] == {"event": "setup", "device": harness.device.value, "operators": ["swiglu", "rms_norm"],
                           "max_position": MAX_POSITION,
                           "stream": None if harness.device is Device.CPU else recorded[0]["stream"]}
    assert [e["event"] for e in recorded[1:]] == ["call"] * (len(recorded) - 2) + ["teardown"]
    assert len(recorded) > 3


def test_a_setup_that_raises_is_a_usage_error_naming_the_backend(harness, tmp_path, monkeypatch, capsys):
    write_backend(tmp_path, monkeypatch, "unlicensed_backend", setup_body="raise RuntimeError('no licence')")
    code = main(["--device", harness.device.value, "--backend", "unlicensed_backend", "--operators", "swiglu",
                 "--dtypes", "f32", "--examples", "1", "--no-contract"])
    assert code == EXIT_USAGE
    assert "backend 'hooked': setup raised RuntimeError: no licence" in capsys.readouterr().err


def test_a_workspace_grows_when_asked_for_more_and_is_reused_after(harness):
    workspace = Workspace(harness.device)
    first = workspace.get(1000)
    assert first.numel() == 1000 and workspace.get(10).data_ptr() == first.data_ptr()
    assert workspace.get(5000).numel() == 5000 and workspace.get(1000).data_ptr() == workspace.get(5000).data_ptr()
