"""``python -m convcalc`` and the ``convcalc`` command: Ctrl-C handling first, then everything else.

The SIGINT handler goes in before click, rich or torch is imported (``convcalc.interrupts`` says
why), so an interrupt during start-up ends in the same one-line message and exit 1 as any other.
"""

from convcalc import interrupts


def run() -> None:
    interrupts.install()
    from convcalc.cli import main

    try:
        main()
    finally:
        interrupts.done()


if __name__ == "__main__":
    run()
