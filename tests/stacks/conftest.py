"""Real-stack tests: transformers, Lightning and accelerate, on tiny models built in the test.

Nothing is downloaded: configs are built in code with random init, and the Hugging Face hub is kept
offline so a library reaching for it fails fast instead of waiting on a network this machine lacks.
Each library is optional (the ``stacks`` extra); a test whose library is missing is skipped, saying so.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
