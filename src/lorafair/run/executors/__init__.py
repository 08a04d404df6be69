"""Executors: where the jobs of ``lorafair run --executor NAME`` run (one module per engine, registered in
:data:`lorafair.run.executors.base.EXECUTORS`; the sweep driver is :mod:`lorafair.run.sweep`)."""
