"""scallion's benchmark harness (not part of the installed package).

* ``python -m bench.run`` -- wall-clock throughput, interleaved across frameworks and servers (``make bench``);
* ``python -m bench.instructions`` -- CPU instructions per message / request under callgrind
  (``make bench-instructions``);
* ``bench.pingpong`` -- the in-process fake ASGI server both the instruction counts and the smoke test use;
* ``bench.apps`` -- the same echo / hello / JSON / broadcast apps written for every framework.

See ``docs/performance.md`` for the method and the results.
"""
