"""``make chaos`` (``python -m bench.chaos``): fault drills against real ``python -m serving`` processes
under a retrying Track load, reported as one table of what was acknowledged, stored, lost and
duplicated.

``lab`` builds the worlds and runs the servers, ``load`` is the retrying client, ``scenarios`` the
faults, ``report`` the counting and the table. This module imports nothing: ``bench.chaos.slow_fsync``
must wrap ``os.fsync`` before anything from serving is imported, and importing it imports this first.
"""
