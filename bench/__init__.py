"""Benchmarks of lms-shared against the bare frameworks, as ratios in one run.

Run them all with ``make bench`` (``python -m bench``), one with
``python -m bench http``, list them with ``python -m bench --list`` and see
one's options with ``python -m bench http -h``. Every argument after the
benchmark names goes to each selected benchmark. docs/benchmarks.md says
what is measured and how to read it.

Adding a benchmark: create ``bench/<name>.py`` (a name not starting with
``_``; helpers live in ``bench/_*.py``). The runner finds it by its file,
so nothing needs registering. The contract:

* ``main(argv: list[str]) -> int`` runs it; ``argv`` holds only options.
* It accepts ``--quick`` (a smoke run of seconds), ``--check`` (exit 1 when
  a target is missed) and ``--save`` (write ``bench/results/<name>-*.json``):
  build its parser with ``bench._report.parser`` and save with
  ``bench._report.save``.
* It measures the subject and its baselines side by side in the same run,
  interleaved in rounds (A, B, C, A, B, C, ...), and prints each table as a
  ``bench._report.Comparison``: absolute medians, speed ratios to each
  baseline, and each target met or missed.
* It returns 0, or 1 only under ``--check`` with a missed target: a missed
  target never fails a plain run, and tests never assert on timings.
* Its processes listen on 127.0.0.1 only, on free ports, and are stopped in
  ``finally`` blocks (``bench._procs``); its temporary files are removed.
* The first line of its module docstring is its ``--list`` description.

Helpers: ``bench._asgi`` drives an ASGI app in process, ``bench._load`` is
the HTTP load client, ``bench._server`` serves an app under uvicorn,
``bench._procs`` pins CPUs and starts and stops processes,
``bench._profile`` prints an app's top costs.
"""
