"""The benchmark suite of memblock-arena: one harness (``python -m bench``), one script per
family (``bench_small``, ``bench_large``, ``bench_memblock``, ``bench_replay``), the linear
reference memblock (``arena.memblock_linear``), results in ``bench/RESULTS.md`` and
``bench/scaling.svg``.
"""
