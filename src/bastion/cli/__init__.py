"""The ``bastion`` command line. Every command calls the Python API; this layer only parses
arguments, calls, and prints. Errors print as one line without a traceback, exit status 2."""

from __future__ import annotations

import os
import sys

__all__ = ["main", "run"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the process status."""
    from bastion.core.errors import BastionError

    try:
        from bastion.cli.app import app, err_console

        app(args=argv, prog_name="bastion", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BastionError as exc:
        from rich.markup import escape

        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, unless asked for the traceback
        if os.environ.get("BASTION_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (set BASTION_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def run() -> None:
    """Console-script entry point: exits with `main`'s status."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
