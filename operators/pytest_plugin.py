"""The pytest plugin of the harness: options, the `harness` fixture, and the JSON report.

State lives in config.stash (the options and the results of the session), never in globals."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings

from operators.backends import Backend, BackendError, started
from operators.core.case import Case
from operators.core.checker import check_case
from operators.core.device import Device
from operators.core.drawing import seed_alone
from operators.core.dtypes import DType, FLOAT_DTYPES
from operators.core.exits import UsageError
from operators.core.profiles import PROFILES, register_profiles, seeded_profile, unshrunk_profile
from operators.core.registry import OPERATOR_NAMES, get_spec
from operators.core.run_context import RunContext, current_stream
from operators.rope import MAX_POSITION
from reports.drift import add_drift_options
from operators.core.result import CaseResult, Verdict, ended_case
from operators.core.worker import CaseWorker
from operators.core.xdist_workers import (is_controller, pin_worker_to_gpu, received_results, send_results,
                                          share_the_cpus, worker_index)
from operators.core.target import (BACKEND_HELP, add_guard_options, check_available, check_importable,
                                   check_something_is_checked, device_help, parse_device, select_backend)


@dataclass
class HarnessSession:
    device: Device
    backend_name: str
    dtypes: tuple[DType, ...]
    profile: str
    report: Path | None
    results: list[CaseResult] = field(default_factory=list)
    self_tests_left_out: int = 0
    backend: Backend | None = None
    started: float = field(default_factory=time.perf_counter)
    require_support: bool = False  # a case the kernel refuses as unsupported fails its test
    worker: CaseWorker | None = None  # --isolate: the backend's cases run in this worker process
    guard_pages: bool = False  # CPU: inaccessible pages around every tensor's buffer


SESSION_KEY = pytest.StashKey[HarnessSession]()
BACKEND_MARK = "backend_under_test"
DEFAULT_BACKENDS = ("native",)
BUILT_IN_BACKENDS = ("native", "torch")  # not isolated unless --isolate on


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qwen3-harness", "Qwen3 kernel accuracy harness")
    group.addoption("--device", default=Device.CPU.value, help=device_help(Device.CPU))
    group.addoption("--backend", default="native", help=BACKEND_HELP)
    group.addoption("--dtypes", default="f32,f16,bf16", help="comma-separated working dtypes")
    group.addoption("--profile", default="ci", choices=sorted(PROFILES), help="hypothesis profile (default ci)")
    group.addoption("--report", type=Path, default=None, help="write the checked cases as a JSON report")
    group.addoption("--all-suites", action="store_true",
                    help="with a plug-in --backend, run the harness's self-tests too (by default only the "
                         "suites marked backend_under_test, the ones that call the backend, run)")
    group.addoption("--isolate", choices=("auto", "on", "off"), default="auto",
                    help="check the backend's cases in a worker process, so that a kernel that crashes or hangs "
                         "fails its own test and the run goes on (auto: on for a plug-in --backend)")
    add_guard_options(group.addoption)
    group.addoption("--baseline", type=Path, default=None,
                    help="an earlier --report of the same seed and profile: new failures, vanished pairs and drift "
                         "beyond the margin fail the session")
    add_drift_options(group.addoption)
    group.addoption("--seed", type=int, default=None,
                    help="draw other cases: the hypothesis seed, honoured by every profile (ci included: the "
                         "same seed draws the same cases)")


def interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    register_profiles()
    config.addinivalue_line("markers", f"{BACKEND_MARK}: the test calls the backend under test (--backend); a "
                                       "plug-in run selects these alone unless --all-suites")
    profile, seed = config.getoption("--profile"), config.getoption("--seed")
    backend = config.getoption("--backend")
    isolate = config.getoption("--isolate") == "on" or (
        config.getoption("--isolate") == "auto" and backend not in BUILT_IN_BACKENDS)
    if isolate:
        profile = unshrunk_profile(profile)  # each shrinking step of a crashing kernel would restart the worker
    if seed is not None:
        # The ci profile is derandomised (hypothesis then ignores any seed); with --seed it draws from
        # that seed instead, which hypothesis's own plugin (configured after this one) forces.
        profile = seeded_profile(profile)
        config.option.hypothesis_seed = str(seed)
    settings.load_profile(profile)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)  # pytest then stops as on Ctrl-C and --report is still written
    try:
        device = parse_device(config.getoption("--device"))
        dtypes = tuple(DType.parse(d.strip()) for d in config.getoption("--dtypes").split(",") if d.strip())
    except (UsageError, ValueError) as error:
        raise pytest.UsageError(str(error)) from None
    if not dtypes or any(d not in FLOAT_DTYPES for d in dtypes):
        raise pytest.UsageError("--dtypes must name working dtypes among f32, f16, bf16")
    index = worker_index(config)
    if index is not None and device is Device.NVIDIA:
        pin_worker_to_gpu(index)
    share_the_cpus(config)
    report = config.getoption("--report")
    if report is not None:
        from reports.document import ReportPathError, check_report_path
        try:
            check_report_path(report)
        except ReportPathError as error:
            raise pytest.UsageError(f"--report: {error}") from None
    if config.getoption("--baseline") is not None:
        from reports.drift import load_baseline
        from reports.schemas import DocumentKindError
        try:
            load_baseline(config.getoption("--baseline"))
        except (OSError, ValueError, DocumentKindError) as error:
            raise pytest.UsageError(f"--baseline: {error}") from None
    guard_pages = config.getoption("--guard-pages")
    if guard_pages and device is not Device.CPU:
        raise pytest.UsageError("--guard-pages works on --device cpu")
    if not config.getoption("--kernel-timeout") > 0:
        raise pytest.UsageError("--kernel-timeout must be a positive number of seconds")
    try:
        check_importable(backend)
    except UsageError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[SESSION_KEY] = HarnessSession(device, backend, dtypes, config.getoption("--profile"),
                                               config.getoption("--report"),
                                               require_support=config.getoption("--require-support"),
                                               worker=CaseWorker(device, backend, config.getoption("--kernel-timeout"),
                                                                 guard_pages) if isolate else None,
                                               guard_pages=guard_pages)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A plug-in backend's run keeps the tests that call it; the harness's self-tests (which check
    the harness with its own native kernels) are left out and counted in the terminal summary."""
    if config.getoption("--backend") in DEFAULT_BACKENDS or config.getoption("--all-suites"):
        return
    kept = [item for item in items if item.get_closest_marker(BACKEND_MARK)]
    left_out = [item for item in items if not item.get_closest_marker(BACKEND_MARK)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        config.stash[SESSION_KEY].self_tests_left_out = len(left_out)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Hypothesis's draws in the suites depend on the seed alone too (operators/core/drawing.py)."""
    with seed_alone():
        return (yield)


def pytest_report_header(config: pytest.Config) -> str:
    session = config.stash[SESSION_KEY]
    return (f"qwen3-harness: device={session.device.value} backend={session.backend_name} "
            f"dtypes={','.join(d.short for d in session.dtypes)} hypothesis profile={session.profile}"
            + (f" seed={config.getoption('--seed')}" if config.getoption("--seed") is not None else ""))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "working_dtype" in metafunc.fixturenames:
        dtypes = metafunc.config.stash[SESSION_KEY].dtypes
        metafunc.parametrize("working_dtype", dtypes, ids=[d.short for d in dtypes])


class Harness:
    """What a test body needs: the device, the backend, and one-call checking."""

    def __init__(self, session: HarnessSession) -> None:
        self.session = session

    @property
    def device(self) -> Device:
        return self.session.device

    @property
    def backend(self) -> Backend:
        return self.session.backend

    def cases(self, operator: str, dtype: DType):
        return get_spec(operator).cases(self.device, dtype)

    def check(self, case: Case, backend: Backend | None = None) -> CaseResult:
        backend = backend or self.backend
        kernel = backend.kernel(case.operator)
        if kernel is None:
            pytest.skip(f"backend '{backend.name}' has no kernel for '{case.operator}'")
        spec, worker = get_spec(case.operator), self.session.worker
        if worker is not None and backend is self.backend:
            result = worker.check(case, lambda reason: ended_case(case, kernel, backend.loaded_as, self.device,
                                                                  spec.budget, reason))
        else:
            result = check_case(spec, case, kernel, self.device, backend.loaded_as, self.session.guard_pages)
        self.session.results.append(result)
        return result

    def assert_passes(self, case: Case) -> None:
        """Unsupported (a clean refusal) is not a failure unless --require-support."""
        result = self.check(case)
        if result.verdict is Verdict.UNSUPPORTED and not self.session.require_support:
            return
        if not result.passed:
            raise AssertionError(result.describe_failure())


@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config) -> Iterator[Harness]:
    session = pytestconfig.stash[SESSION_KEY]
    try:
        check_available(session.device)
    except UsageError as error:
        pytest.skip(str(error))
    try:
        if session.backend is None:
            session.backend = select_backend(session.backend_name, session.device)
        check_something_is_checked(session.backend)
        context = RunContext(session.device, tuple(session.backend.kernels), MAX_POSITION,
                             current_stream(session.device))
        with started(session.backend, context):
            yield Harness(session)
    except (UsageError, BackendError) as error:
        pytest.fail(str(error), pytrace=False)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    refused = [r for r in state.results if r.verdict is Verdict.UNSUPPORTED] if state is not None else []
    if refused:
        from reports.tables import support_table
        terminalreporter.write_line(f"qwen3-harness: backend '{state.backend_name}' refused {len(refused)} cases as "
                                    "unsupported" + (" (failed: --require-support)" if state.require_support else
                                                     " (neither passed nor failed; --require-support fails them)"))
        terminalreporter.write_line(support_table(state.results))
    if state is not None and state.self_tests_left_out:
        terminalreporter.write_line(f"qwen3-harness: backend '{state.backend_name}': {state.self_tests_left_out} "
                                    "self-tests of the harness left out (they do not call the backend; "
                                    "--all-suites runs them)")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` on a GPU: one worker per visible GPU (xdist's own count, the CPUs, otherwise)."""
    try:
        on_gpu = parse_device(config.getoption("--device")) is Device.NVIDIA
    except UsageError:
        return None
    if not on_gpu:
        return None
    import torch
    return torch.cuda.device_count() or None


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist: a worker finished; its cases join the controller's report."""
    state = node.config.stash.get(SESSION_KEY, None)
    if state is not None and hasattr(node, "workeroutput"):
        results, left_out = received_results(node.workeroutput)
        state.results += results
        state.self_tests_left_out = max(state.self_tests_left_out, left_out)


def in_report_order(results: list[CaseResult]) -> list[CaseResult]:
    """Operator, dtype, case: the same order whichever process or test order checked them."""
    operators = {name: number for number, name in enumerate(OPERATOR_NAMES)}
    return sorted(results, key=lambda r: (operators.get(r.case.operator, len(operators)), r.case.dtype.value,
                                          r.case.compact_json()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is not None and state.worker is not None:
        state.worker.stop()
    if state is not None and not is_controller(session.config):
        send_results(session.config, state.results, state.self_tests_left_out)
        return  # the controlling process writes the report and compares it with --baseline
    baseline = session.config.getoption("--baseline")
    if state is None or (state.report is None and baseline is None):
        return
    from reports.document import build_document, json_text, write_json
    from reports.drift import compare, load_baseline
    from reports.environment import collect_environment

    config = {"device": state.device.value, "backend": state.backend_name, "profile": state.profile,
              "dtypes": [d.value for d in state.dtypes], "source": "pytest", "exit_status": int(exitstatus)}
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    incomplete = {"reason": "interrupted (SIGTERM or Ctrl-C)", "steps_not_run": None} if interrupted else None
    if state.backend is None and state.results:  # an xdist controller: its workers ran the backend
        try:
            state.backend = select_backend(state.backend_name, state.device)
        except (UsageError, BackendError):
            pass
    document = build_document(in_report_order(state.results), [], config,
                              collect_environment(state.device.torch_type, state.backend), incomplete=incomplete)
    if exitstatus != 0 and not interrupted:
        # Failures outside the recorded cases (a contract check, bad input, a self-test) fail it too.
        document["verdict"] = "fail"
    document["seconds"] = round(time.perf_counter() - state.started, 2)
    if baseline is not None:
        drift = compare(load_baseline(baseline), json.loads(json_text(document)),
                        session.config.getoption("--drift-margin"))
        regressed = drift.regressed(session.config.getoption("--fail-on"))
        print("\n" + "\n".join(drift.lines()) + f"\nqwen3-harness: drift against {baseline}: "
              + ("REGRESSION" if regressed else "none beyond the margin"))
        if regressed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.report is not None:
        write_json(state.report, document)
