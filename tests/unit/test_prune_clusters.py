"""Which kept clusters go: gone projects, earlier chains, the cache-wide cap (no server needed)."""

from __future__ import annotations

import json
import os

from pytest_clinicdb.gc import prune_clusters
from pytest_clinicdb.runs import RunRef
from pytest_clinicdb.server.cluster import ClusterDir


def cluster(cache, name, *, project="p1", paths=None, used=0.0, meta=True):
    c = ClusterDir(cache / f"cluster-{name}")
    c.root.mkdir(parents=True)
    if meta:
        c.write_meta(project=project, project_paths=paths or [str(cache)], last_used=used)
    return c


def test_gone_projects_earlier_chains_and_the_cache_wide_cap(tmp_path):
    cache = tmp_path / "cache"
    current = cluster(cache, "p1-now", used=100)
    cluster(cache, "p1-old1", used=90)
    cluster(cache, "p1-old2", used=80)
    cluster(cache, "gone", project="p2", paths=[str(tmp_path / "deleted-checkout")], used=99)
    cluster(cache, "legacy", meta=False)
    for i in range(4):
        cluster(cache, f"p3-{i}", project=f"p3-{i}", used=50 - i)
    deleted = dict(
        (p.name, why)
        for p, why in prune_clusters(cache, "p1", keep=2, skip=current.root, keep_all=4)
    )
    assert deleted == {
        "cluster-p1-old2": "an earlier migration chain of this project",
        "cluster-gone": "its project's folders are gone",
        "cluster-legacy": "made by an earlier version of the plugin",
        "cluster-p3-2": "beyond the 4 most recently used clusters of the cache",
        "cluster-p3-3": "beyond the 4 most recently used clusters of the cache",
    }
    left = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert left == ["cluster-p1-now", "cluster-p1-old1", "cluster-p3-0", "cluster-p3-1"]


def test_a_cluster_a_live_run_uses_is_never_deleted(tmp_path):
    cache = tmp_path / "cache"
    current = cluster(cache, "now", used=100)
    busy = cluster(cache, "gone-but-busy", project="p2", paths=[str(tmp_path / "nope")])
    busy.register(RunRef.of("live", os.getpid()))
    assert prune_clusters(cache, "p1", keep=5, skip=current.root) == []
    assert busy.root.is_dir()
    assert json.loads((busy.users / "live.json").read_text())["id"] == "live"
