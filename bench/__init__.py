"""Benchmark of the whole handbook (issue #10): ``python -m bench`` (``make bench``).

* :mod:`bench.measure` — run a command and measure its wall time, phases and the peak resident
  memory (RSS) of its whole process tree (the runner and the notebook kernel it starts);
* :mod:`bench.report` — sizes, growth exponents, targets, the printed table, results.json,
  results.csv and SUMMARY.md (pure functions of the measurements, unit-tested);
* :mod:`bench.harness` — the benchmark itself: data per size, one runner process per chapter,
  the default run, the peer comparison, the results folder;
* :mod:`bench.peers` — the peer comparison (``lifetimes``, ``mlxtend``), run in a separate venv
  (``bench/.venv-peers``) on the same input files; :mod:`bench.peer_side` runs in that venv,
  :mod:`bench.handbook_side` in the project venv.

Nothing here is imported by the handbook itself; the peers are benchmark-only.
"""
