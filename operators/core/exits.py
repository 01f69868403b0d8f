"""Exit codes of every command, by cause, and the guard that turns an escaped exception into one.

0 every check passed, 1 a verdict failed, 2 a usage or environment error (bad arguments, a missing
device, a broken plug-in, an unsupported transformers, out of device memory), 3 an internal error
of the harness: its traceback is saved to a file named in one line, for a bug report."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from typing import Callable

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE's: the output's reader closed it


class UsageError(Exception):
    """Bad command-line input or environment: reported in one line, exit code 2."""


def usage_exit(error: Exception) -> int:
    """A usage or environment error reported in its one line: exit code 2."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USAGE


def is_out_of_memory(error: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA and other devices) or a kernel's KernelOutOfMemoryError, told
    without importing torch here."""
    return any(kind.__name__ in ("OutOfMemoryError", "KernelOutOfMemoryError") for kind in type(error).__mro__)


def save_traceback(program: str, error: BaseException) -> str:
    """The traceback in a new file of the temporary directory; returns its path."""
    with tempfile.NamedTemporaryFile("w", prefix=f"{program.replace('.', '-')}-error-", suffix=".txt",
                                     delete=False) as file:
        file.write(f"{program} {' '.join(sys.argv[1:])}\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n")
        file.write("".join(traceback.format_exception(error)))
        return file.name


def run_guarded(program: str, main: Callable[[], int]) -> int:
    """`main()`'s exit code; an exception it lets escape becomes exit 2 (out of memory) or 3."""
    try:
        return main()
    except KeyboardInterrupt:
        raise
    except BrokenPipeError:  # the reader went away (`| head`): end as a shell would, without a verdict
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except MemoryError as error:
        print(f"error: {program}: out of host memory ({error}); use smaller cases or a larger machine",
              file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the last line of defence of a command
        if is_out_of_memory(error):
            first = str(error).splitlines()[0] if str(error) else ""
            print(f"error: {program}: out of device memory: {first}", file=sys.stderr)
            return EXIT_USAGE
        try:
            where = f"traceback saved to {save_traceback(program, error)}"
        except OSError as unsaved:
            where = f"traceback not saved ({unsaved}); rerun with python -X dev for it"
        print(f"internal error of the harness in {program}: {type(error).__name__}: {error}; {where}",
              file=sys.stderr)
        return EXIT_INTERNAL
