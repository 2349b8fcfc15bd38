"""TreeDistanceTable: build once, compute blocks anywhere; and a real Dask cluster."""

from __future__ import annotations

import itertools
import pickle
import time

import numpy as np
import pytest

from papershelf.tmd import TreeDistanceTable, molecule_like_graphs, pairwise_tmd


@pytest.fixture(scope="module")
def graphs() -> list[object]:
    return molecule_like_graphs(14, max_nodes=16, random_state=11)


def test_blocks_assemble_to_the_matrix_bit_for_bit(graphs: list[object]) -> None:
    ref = pairwise_tmd(graphs, w=0.5, depth=3)
    table = TreeDistanceTable(graphs, w=0.5, depth=3)
    assert len(table) == 14 and table.depth == 3 and table.weights == (0.5, 0.5)
    assert table.distances.shape == (table.num_classes[-1] + 1,) * 2
    assert np.array_equal(table.pairwise(), ref)
    full = np.zeros_like(ref)
    cuts = [0, 5, 9, 14]
    for r0, r1 in itertools.pairwise(cuts):
        for c0, c1 in itertools.pairwise(cuts):
            full[r0:r1, c0:c1] = table.pairwise(slice(r0, r1), range(c0, c1))
    assert np.array_equal(full, ref)  # every block, diagonal ones included, is exact
    assert np.array_equal(table.pairwise([3, 1, -1], np.array([0, 3])), ref[[3, 1, 13]][:, [0, 3]])
    assert table.pairwise([], [1, 2]).shape == (0, 2)
    loaded = pickle.loads(pickle.dumps(table))  # ships to other processes or machines
    assert np.array_equal(loaded.pairwise(slice(0, 4), slice(10, 14)), ref[:4, 10:])
    # rectangular pairwise_tmd is a block of the union's table
    assert np.array_equal(pairwise_tmd(graphs[:6], graphs[6:], w=0.5, depth=3), ref[:6, 6:])


def test_bad_indices(graphs: list[object]) -> None:
    table = TreeDistanceTable(graphs[:3], depth=2)
    with pytest.raises(ValueError, match=r"rows holds graph indices outside \[-3, 3\)"):
        table.pairwise([0, 3])
    with pytest.raises(TypeError, match="cols must hold integer graph indices"):
        table.pairwise(None, [0.5])
    with pytest.raises(TypeError, match="rows must be None, a slice or a sequence"):
        table.pairwise(2)
    with pytest.raises(ValueError, match="graphs must hold at least one graph"):
        TreeDistanceTable([])
    with pytest.raises(ValueError, match="n_jobs"):
        table.pairwise(n_jobs=0)


@pytest.mark.slow
def test_dask_cluster_gives_the_serial_matrix_on_its_workers() -> None:
    """Issue 19: joblib's Dask backend on a 2-process LocalCluster; work lands on the workers.

    About 15-40 s (cluster start-up and worker imports dominate).
    """
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("distributed")
    from papershelf.tmd import distance

    graphs = molecule_like_graphs(40, random_state=3)
    serial = pairwise_tmd(graphs, w=0.5, depth=3, n_jobs=1)
    t0 = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,  # fmt: skip
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        with distributed.get_task_stream(client) as stream:
            with joblib.parallel_config(backend="dask"):
                dist = pairwise_tmd(graphs, w=0.5, depth=3)
                table = TreeDistanceTable(graphs, w=0.5, depth=3)
            # a user farming blocks out by hand: ship the table once, one task per block
            remote = client.scatter(table, broadcast=True)
            futures = [
                client.submit(
                    TreeDistanceTable.pairwise,
                    remote,
                    slice(r, r + 20),
                    slice(c, c + 20),
                    pure=False,
                )
                for r in (0, 20)
                for c in (0, 20)
            ]
            blocks = client.gather(futures)
    assert np.array_equal(dist, serial)  # bit for bit
    assert np.array_equal(np.block([blocks[:2], blocks[2:]]), serial)
    tasks = stream.data
    names = {t["key"] if isinstance(t["key"], str) else t["key"][0] for t in tasks}
    assert any(distance._table_block.__name__ in n for n in names), names
    assert any(distance._pairs_from_table.__name__ in n for n in names), names
    used = {t["worker"] for t in tasks}
    assert used <= workers and len(used) == 2  # both worker processes did work
    assert time.perf_counter() - t0 < 120
