"""Datasets never die: a v0 catalogue id rebuilds from its committed recipe to the same bytes.

The digest below is of the manifest (every data file's sha256 and size) of `execution-ac/random-v0`
rebuilt on this project's machines, before and after the layering refactor (both gave it). The
random tier depends only on numpy's seeded generators and the env's arithmetic, so it is the
platform-stable witness; tiers rolled by behaviour networks are identical on one platform (checked
by scripts, not here) but can differ in the last float bits across BLAS kernels.
"""

from __future__ import annotations

import hashlib
import json

from ogdata.generate import rebuild

RANDOM_V0_MANIFEST = "98a76b921aabbc84ed1d4c5bf92acd81b75a2b15125668a19f63daf602cc71c7"


def test_a_v0_catalogue_id_rebuilds_byte_identically(tmp_path):
    ds = rebuild("execution-ac/random-v0", tmp_path / "random-v0", progress=False)
    digest = hashlib.sha256(json.dumps(ds.metadata["manifest"], sort_keys=True).encode()).hexdigest()
    assert ds.num_transitions == 100_000 and ds.dataset_id == "execution-ac/random-v0"
    assert digest == RANDOM_V0_MANIFEST


def test_a_policy_tier_is_the_same_bytes_with_one_worker_or_two(tmp_path):
    """One BLAS thread everywhere: in-process (1 worker) and in worker processes alike. Before, the
    in-process rollout let BLAS split the policy's matmuls over threads and the floats differed in
    the last bits from a `--workers 2` build (how the catalogue was made)."""
    def digest(ds):
        return hashlib.sha256(json.dumps(ds.metadata["manifest"], sort_keys=True).encode()).hexdigest()

    one = rebuild("execution-ac/good-v0", tmp_path / "w1", workers=1, progress=False)
    two = rebuild("execution-ac/good-v0", tmp_path / "w2", workers=2, progress=False)
    assert digest(one) == digest(two)
