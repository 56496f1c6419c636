"""The report detector's process stays lean: the server does not load numpy for it, nor the child the server."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from statusd.reports.host import ProcessDetector
from statusd.reports.spec import DetectorSpec

SERVER_ONLY = ("aiohttp", "jinja2", "aiosqlite", "asyncpg", "prometheus_client", "apscheduler", "cryptography",
               "statusd.app", "statusd.api", "statusd.incidents", "statusd.store", "statusd.cli", "status_page")


def modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code`, as the list it prints."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_server_whose_detector_runs_in_a_child_does_not_import_numpy(tmp_path) -> None:
    loaded = modules_after(f"""
        import sys
        from statusd.app import build_app
        from statusd.config.loader import parse_config
        config = parse_config({{"store": {{"path": {str(tmp_path / "statusd.db")!r}}}}}, {{}})
        assert config.reports.detector_process
        build_app(config, run_probes=False, run_worker=False)
        print(*sorted(m for m in sys.modules if m.split(".")[0] == "numpy" or m.startswith("statusd.reports.")))
    """)
    assert not [m for m in loaded if m.startswith("numpy")]
    assert not {"statusd.reports.clustering", "statusd.reports.detector", "statusd.reports.encoders"} & set(loaded)


def test_the_detector_child_imports_what_detection_needs_and_not_the_server() -> None:
    loaded = modules_after(f"""
        import sys
        from statusd.reports import worker
        from statusd.reports.spec import DetectorSpec
        DetectorSpec().build()
        print(*sorted(m for m in sys.modules if m.startswith({SERVER_ONLY!r})))
    """)
    assert loaded == []


async def test_the_detector_child_runs_the_worker_module_alone() -> None:
    host = ProcessDetector(DetectorSpec())
    try:
        pid = await host.pid()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert argv[1:3] == [b"-m", b"statusd.reports.worker"]  # not the server's entry script, as spawn ran it
    finally:
        await host.close()


def test_one_blas_thread_holds_when_numpy_was_not_loaded_yet() -> None:
    """The child calls it before its detector (and numpy) is built; the limit must still hold."""
    threads = modules_after("""
        from statusd.reports.worker import one_blas_thread
        one_blas_thread()
        import numpy  # what building the detector loads next
        from threadpoolctl import threadpool_info
        print(*sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}))
    """)
    assert threads == ["1"]
