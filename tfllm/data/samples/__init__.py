"""Small original texts shipped with tfllm, so that the quickstart and tests run offline.

- `STORIES`: six short stories (about 4 KB of English prose), a corpus for a tiny GPT.
- `REVIEWS`: 128 one-line reviews, a TSV with columns `sentence` and `label`
  (`positive` / `negative`), for a tiny classifier.
"""

import os

_HERE = os.path.dirname(os.path.abspath(__file__))
STORIES = os.path.join(_HERE, "stories.txt")
REVIEWS = os.path.join(_HERE, "reviews.tsv")
