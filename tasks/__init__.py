"""lm-eval task YAMLs for the paper's protocol; ``TASKS_DIR`` is the include path."""
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
