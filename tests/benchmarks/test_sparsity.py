"""benchmarks.sparsity times one dense product against sparse-dense ones of the same kernel."""

import json

import numpy as np

from benchmarks import sparsity


def test_the_sparse_products_compute_the_dense_product_of_the_pruned_kernel():
    methods = sparsity.products(rows=3, sparsities=(0.0,))
    np.testing.assert_allclose(methods["sparse 0%"]().numpy(), methods["dense"]().numpy(), rtol=1e-4, atol=1e-3)


def test_one_table_of_timings(tmp_path):
    output = sparsity.main(["--rows", "4", "--repeats", "2", "--output", str(tmp_path / "out")])
    with open(output + ".json") as file:
        report = json.load(file)
    assert [row["variant"] for row in report["products"]] == ["dense", "sparse 50%", "sparse 90%"]
    assert all(row["microseconds"] > 0 for row in report["products"])
    assert "| sparse 90% |" in open(output + ".md").read()
