"""Before a build: the disk, GPU memory and time it will take, each figure with where it comes from.

reference.py holds the table the figures start from (with its sources), history.py what this machine's earlier
builds teach it (read from build.json), figures.py computes the estimate of one build, and report.py holds it against
this machine's free disk and GPU memory and words it. Everything is pure except free_space (report.py) and
load_history (history.py), which look at the machine.
"""

from sdprep.estimate.figures import Estimate, Figure, Part, estimate, shape_of
from sdprep.estimate.history import PastBuild, PastEngine, load_history, past_build, past_engine_json
from sdprep.estimate.reference import GIB, MIB, REFERENCE, Shape, table_seconds
from sdprep.estimate.report import Line, disk_problem, free_space, lines, size_words, time_words, vram_problem

__all__ = [
    "GIB",
    "MIB",
    "REFERENCE",
    "Estimate",
    "Figure",
    "Line",
    "Part",
    "PastBuild",
    "PastEngine",
    "Shape",
    "disk_problem",
    "estimate",
    "free_space",
    "lines",
    "load_history",
    "past_build",
    "past_engine_json",
    "shape_of",
    "size_words",
    "table_seconds",
    "time_words",
    "vram_problem",
]
