"""maskcheck.dynamic.data: real probe data (SPEC 5 --data, 7 data=) to bounded numpy batches."""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from maskcheck.dynamic.data import Batch, DataError, load_data_option, read_batches
from maskcheck.dynamic.plan import ProbeError

SEQS = [[3, 1, 4], [1, 5], [9, 2, 6, 5], [3], [5, 8, 9], [7, 9]]
DATA_PY = Path(__file__).resolve().parent.parent / "maskcheck" / "dynamic" / "data.py"


def seq_dataset() -> tf.data.Dataset:
    """Variable-length int sequences, one per element, with their length as the label."""
    ds = tf.data.Dataset.from_generator(lambda: iter(SEQS),
                                        output_signature=tf.TensorSpec((None,), tf.int32))
    return ds.map(with_length)


def with_length(seq):
    return seq, tf.size(seq)


def assert_one_line(excinfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- arrays, whole datasets

def test_arrays_are_a_whole_dataset_cut_into_rows():
    x = np.arange(70 * 3).reshape(70, 3)
    got = read_batches(x, batches=3, rows=32)
    assert [b.size for b in got] == [32, 32, 6]
    np.testing.assert_array_equal(got[1].x, x[32:64])
    np.testing.assert_array_equal(got[2].x, x[64:])
    assert all(b.y is None and b.sample_weight is None and b.mask is None for b in got)
    assert len(read_batches(x, batches=2, rows=32)) == 2
    assert len(read_batches(x, batches=9, rows=32)) == 3  # no empty batches past the end
    assert len(read_batches(x)) == 1 and read_batches(x)[0].size == 32


def test_batches_are_copies_and_deterministic():
    x = np.arange(12).reshape(4, 3)
    first, again = read_batches(x)[0], read_batches(x)[0]
    np.testing.assert_array_equal(first.x, again.x)
    first.x[0, 0] = 99
    assert x[0, 0] == 0  # the user's array is untouched


def test_pad_sequences_with_labels_and_per_step_weights():
    x = keras.utils.pad_sequences(SEQS, maxlen=4, padding="post")
    y = keras.utils.pad_sequences([[s % 2 for s in seq] for seq in SEQS], maxlen=4, padding="post")
    weights = (x != 0).astype("float32")
    (batch,) = read_batches((x, y, weights), rows=4)
    assert batch.size == 4
    np.testing.assert_array_equal(batch.x, x[:4])
    np.testing.assert_array_equal(batch.y, y[:4])
    np.testing.assert_array_equal(batch.sample_weight, weights[:4])
    assert batch.x[1].tolist() == [1, 5, 0, 0]


def test_a_tuple_of_two_arrays_is_x_and_y_but_a_list_is_two_inputs():
    a, b = np.ones((5, 3)), np.zeros((5, 2))
    pair = read_batches((a, b))[0]
    assert isinstance(pair.x, np.ndarray) and pair.y is not None
    inputs = read_batches([a, b])[0]
    assert isinstance(inputs.x, list) and len(inputs.x) == 2 and inputs.y is None
    single = read_batches((a,))[0]
    assert single.y is None and single.x.shape == (5, 3)


def test_a_plain_python_list_of_numbers_is_one_array():
    batch = read_batches([[1, 2, 0], [3, 0, 0]])[0]
    assert isinstance(batch.x, np.ndarray) and batch.x.shape == (2, 3)


def test_tf_tensors_become_numpy():
    batch = read_batches((tf.constant([[1, 2], [3, 4]]), tf.constant([0, 1])))[0]
    assert isinstance(batch.x, np.ndarray) and isinstance(batch.y, np.ndarray)
    assert batch.x.tolist() == [[1, 2], [3, 4]]


def test_dict_without_reserved_keys_is_x_by_input_name():
    data = {"tokens": np.ones((3, 4), "int32"), "segments": np.zeros((3, 4), "int32")}
    batch = read_batches(data)[0]
    assert sorted(batch.x) == ["segments", "tokens"] and batch.y is None


def test_dict_npz_layout_with_aliases_mask_and_lengths():
    x = np.arange(40).reshape(10, 4)
    data = {"x": x, "labels": np.arange(10), "sample_weights": np.ones(10),
            "mask": np.ones((10, 4), "int8"), "lengths": np.full(10, 4.0)}
    got = read_batches(data, batches=2, rows=6)
    assert [b.size for b in got] == [6, 4]
    second = got[1]
    np.testing.assert_array_equal(second.x, x[6:])
    assert second.y.tolist() == [6, 7, 8, 9]
    assert second.mask.dtype == bool and second.mask.shape == (4, 4)
    assert second.lengths.dtype.kind == "i" and second.lengths.tolist() == [4, 4, 4, 4]
    assert second.sample_weight.shape == (4,)


def test_npz_layout_without_x_takes_the_other_keys_as_inputs():
    data = {"tokens": np.ones((3, 5)), "y": np.zeros(3), "mask": np.ones((3, 5), bool)}
    batch = read_batches(data)[0]
    assert list(batch.x) == ["tokens"] and batch.mask.all()


def test_batch_repr_shows_shapes():
    batch = read_batches({"x": np.zeros((2, 3), "float32"), "y": np.zeros(2, "int64")})[0]
    assert isinstance(batch, Batch)
    assert repr(batch) == "Batch(size=2, x=float32(2, 3), y=int64(2,))"


# --------------------------------------------------------------------------- streams

def test_tf_data_padded_batch_of_variable_length_sequences():
    got = read_batches(seq_dataset().padded_batch(2), batches=2)
    assert len(got) == 2
    assert got[0].x.tolist() == [[3, 1, 4], [1, 5, 0]]
    assert got[0].y.tolist() == [3, 2]
    assert got[1].x.shape == (2, 4) and got[1].x[1].tolist() == [3, 0, 0, 0]


def test_tf_data_rows_cut_and_element_forms():
    x = np.arange(60).reshape(20, 3)
    y = np.arange(20)
    triple = tf.data.Dataset.from_tensor_slices((x, y, np.ones(20))).batch(8)
    got = read_batches(triple, batches=5, rows=5)
    assert [b.size for b in got] == [5, 5, 4]  # 8, 8, 4 cut to 5
    np.testing.assert_array_equal(got[1].x, x[8:13])
    np.testing.assert_array_equal(got[1].y, y[8:13])
    assert got[2].sample_weight.shape == (4,)
    alone = read_batches(tf.data.Dataset.from_tensor_slices(x).batch(8))[0]
    assert alone.y is None and alone.size == 8
    named = read_batches(tf.data.Dataset.from_tensor_slices({"tokens": x}).batch(4))[0]
    assert list(named.x) == ["tokens"]


def test_tf_data_reads_only_the_batches_it_needs():
    pulled = []

    def source():
        for i in range(1000):
            pulled.append(i)
            yield np.full((2, 3), i, "float32")

    ds = tf.data.Dataset.from_generator(source, output_signature=tf.TensorSpec((2, 3), tf.float32))
    got = read_batches(ds, batches=2)
    assert [int(b.x[0, 0]) for b in got] == [0, 1]
    assert len(pulled) < 10


def test_infinite_tf_data_stops_at_batches():
    ds = tf.data.Dataset.from_tensor_slices(np.ones((4, 2))).batch(2).repeat()
    assert len(read_batches(ds, batches=3)) == 3


class Batches(keras.utils.PyDataset):
    """A finite PyDataset of (x, y) batches that records which items were read."""

    def __init__(self, count: int, size: int = 4):
        super().__init__()
        self.count, self.size, self.read = count, size, []

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if index >= self.count:
            raise IndexError(index)
        self.read.append(index)
        return np.full((self.size, 3), index, "float32"), np.full((self.size,), index)


class Endless(keras.utils.PyDataset):
    """An infinite PyDataset (num_batches is None)."""

    def __init__(self):
        super().__init__()
        self.read = []

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        self.read.append(index)
        return (np.full((3, 2), index, "float32"),)


def test_pydataset_items_up_to_its_length():
    ds = Batches(3, size=6)
    got = read_batches(ds, batches=5, rows=4)
    assert ds.read == [0, 1, 2]
    assert [int(b.y[0]) for b in got] == [0, 1, 2] and all(b.size == 4 for b in got)
    longer = Batches(10)
    assert len(read_batches(longer, batches=2)) == 2 and longer.read == [0, 1]


def test_infinite_pydataset_reads_exactly_batches():
    ds = Endless()
    got = read_batches(ds, batches=2)
    assert ds.read == [0, 1] and len(got) == 2 and got[1].y is None


def test_generator_is_read_batches_times_only():
    def stream():
        for i in range(5):
            yield np.full((2, 3), i), np.full((2,), i)

    gen = stream()
    got = read_batches(gen, batches=2)
    assert [int(b.y[0]) for b in got] == [0, 1]
    assert int(next(gen)[1][0]) == 2  # the third batch is still there


def test_generator_list_element_is_x_y_as_keras_fit_reads_it():
    got = read_batches(iter([[np.ones((2, 3)), np.zeros(2)]]))[0]
    assert got.x.shape == (2, 3) and got.y.shape == (2,)


def test_iterable_that_is_not_a_list_is_read_as_a_stream():
    class Loader:
        def __iter__(self):
            return iter([np.ones((2, 2)), np.zeros((2, 2))])

    assert [float(b.x[0, 0]) for b in read_batches(Loader(), batches=3)] == [1.0, 0.0]


# --------------------------------------------------------------------------- load_data_option

def test_npz_file(tmp_path):
    path = tmp_path / "batch.npz"
    tokens = keras.utils.pad_sequences(SEQS, maxlen=4)
    np.savez(path, tokens=tokens, y=np.arange(6), mask=tokens != 0)
    data = load_data_option(str(path))
    assert list(data) == ["tokens", "y", "mask"]
    batch = read_batches(data, rows=5)[0]
    assert list(batch.x) == ["tokens"] and batch.size == 5
    np.testing.assert_array_equal(batch.mask, tokens[:5] != 0)
    assert tokens[1].tolist() == [0, 0, 1, 5]  # pad_sequences pads at the front by default


def test_np_load_result_reads_like_a_dict(tmp_path):
    path = tmp_path / "xy.npz"
    np.savez(path, x=np.ones((3, 2)), lengths=np.array([2, 1, 0]))
    with np.load(path) as archive:
        batch = read_batches(archive)[0]
    assert batch.lengths.tolist() == [2, 1, 0] and batch.x.shape == (3, 2)


def write_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    importlib.invalidate_caches()


def test_module_function_is_called(tmp_path, monkeypatch):
    write_module(tmp_path, "mc_probe_data_a", """
        import numpy as np

        def make():
            return np.ones((4, 3)), np.zeros(4)

        def stream():
            for i in range(3):
                yield np.full((2, 2), i)

        class Holder:
            @staticmethod
            def make():
                return {"tokens": np.ones((2, 5))}
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    x, y = load_data_option("mc_probe_data_a:make")
    assert x.shape == (4, 3) and y.shape == (4,)
    got = read_batches(load_data_option("mc_probe_data_a:stream"), batches=2)
    assert [int(b.x[0, 0]) for b in got] == [0, 1]
    assert list(load_data_option("mc_probe_data_a:Holder.make")) == ["tokens"]


def test_module_function_is_found_in_the_working_folder(tmp_path, monkeypatch):
    write_module(tmp_path, "mc_probe_data_cwd", """
        def make():
            return [[1, 2], [3, 4]]
    """)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    assert load_data_option("mc_probe_data_cwd:make") == [[1, 2], [3, 4]]


# --------------------------------------------------------------------------- bad data

def no_elements():
    return iter(())


def raising_stream():
    yield np.ones((2, 2))
    raise RuntimeError("disk went away\nsecond line")


BAD_DATA = {
    "none": (lambda: None, "no data"),
    "zero-rows": (lambda: np.zeros((0, 5)), "the data is empty"),
    "zero-rows-tuple": (lambda: (np.zeros((0, 5)), np.zeros(0)), "the data is empty"),
    "empty-dataset": (lambda: tf.data.Dataset.from_tensor_slices(np.zeros((0, 3))).batch(2),
                      "the data is empty"),
    "empty-generator": (no_elements, "the data is empty"),
    "empty-pydataset": (lambda: Batches(0), "the data is empty"),
    "empty-batch": (lambda: iter([np.zeros((0, 3))]), "the data is empty: batch 0"),
    "ragged-tensor": (lambda: tf.ragged.constant(SEQS), "x is a tf.RaggedTensor"),
    "ragged-dataset": (lambda: seq_dataset().ragged_batch(2), "x is a tf.RaggedTensor"),
    "ragged-input": (lambda: {"tokens": tf.ragged.constant(SEQS), "y": np.zeros(6)},
                     "x['tokens'] is a tf.RaggedTensor"),
    "ragged-y": (lambda: (np.ones((6, 2)), tf.ragged.constant(SEQS)), "y is a tf.RaggedTensor"),
    "ragged-list": (lambda: SEQS, "sequences of different lengths"),
    "ragged-objects": (lambda: np.array([np.ones(2), np.ones(3)], dtype=object), "ragged"),
    "unpadded-batch": (lambda: seq_dataset().batch(2), "padded_batch"),
    "strings": (lambda: np.array(["a cat", "a dog"]), "holds strings"),
    "string-dataset": (lambda: tf.data.Dataset.from_tensor_slices(["a", "b"]).batch(2), "holds strings"),
    "a-string": (lambda: "batch.npz", "load_data_option"),
    "none-x": (lambda: (None, np.zeros(3)), "x is None"),
    "object": (lambda: object(), "not numbers"),
    "objects-in-dict": (lambda: {"tokens": [object(), object()]}, "x['tokens']"),
    "x-y-sizes": (lambda: (np.zeros((4, 3)), np.zeros(3)), "x has 4 samples but y has 3"),
    "y-weight-sizes": (lambda: (np.zeros((4, 3)), np.zeros(4), np.ones(5)), "sample_weight has 5"),
    "input-sizes": (lambda: {"a": np.zeros((4, 3)), "b": np.zeros((2, 3))}, "x['b'] has 2"),
    "stream-sizes": (lambda: iter([(np.zeros((2, 3)), np.zeros(3))]), "batch 0 of the iterator"),
    "zero-d": (lambda: np.array(5.0), "no batch axis"),
    "scalar": (lambda: np.float32(3), "no batch axis"),
    "unbatched-dataset": (lambda: tf.data.Dataset.range(4), ".batch(n)"),
    "tuple-of-4": (lambda: (np.ones((2, 1)),) * 4, "tuple of 4 items"),
    "empty-tuple": (lambda: (), "tuple of 0 items"),
    "stream-tuple-of-4": (lambda: iter([(np.ones((2, 1)),) * 4]), "batch 0 of the iterator is a tuple of 4"),
    "generator-function": (lambda: raising_stream, "does not call"),
    "generator-raises": (raising_stream, "RuntimeError at batch 1: disk went away"),
    "y-and-labels": (lambda: {"x": np.ones((2, 1)), "y": np.ones(2), "labels": np.ones(2)}, "both"),
    "x-and-extra": (lambda: {"x": np.ones((2, 1)), "y": np.ones(2), "vocab": np.ones(3)}, "'vocab'"),
    "only-reserved": (lambda: {"y": np.ones(2), "mask": np.ones((2, 3))}, "no inputs"),
    "mask-values": (lambda: {"x": np.ones((2, 3)), "mask": np.full((2, 3), 2)}, "other than 0 and 1"),
    "mask-rank": (lambda: {"x": np.ones((2, 3)), "mask": np.ones(2, bool)}, "(batch, time)"),
    "lengths-negative": (lambda: {"x": np.ones((2, 3)), "lengths": np.array([-1, 2])}, "non-negative"),
    "lengths-fraction": (lambda: {"x": np.ones((2, 3)), "lengths": np.array([1.5, 2])}, "non-integer"),
    "sparse": (lambda: tf.sparse.from_dense(np.eye(3)), "tf.sparse.to_dense"),
}


@pytest.mark.parametrize("make, fragment", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_data_gets_a_one_line_reason(make, fragment):
    with pytest.raises(DataError) as excinfo:
        read_batches(make(), batches=2)
    assert_one_line(excinfo, fragment)
    assert isinstance(excinfo.value, ProbeError)


def test_a_callable_is_never_called():
    calls = []

    def make():
        calls.append(1)
        return np.ones((2, 2))

    with pytest.raises(DataError) as excinfo:
        read_batches(make)
    assert_one_line(excinfo, "does not call", "--data module:function")
    assert calls == []


@pytest.mark.parametrize("batches, rows", [(0, 32), (1, 0), (True, 32), (1, 2.5)])
def test_bad_counts(batches, rows):
    with pytest.raises(DataError) as excinfo:
        read_batches(np.ones((4, 2)), batches=batches, rows=rows)
    assert_one_line(excinfo, "must be a positive integer")


def bad_npz_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([np.ones(2), np.ones(3)], dtype=object))
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, x=np.arange(1000))
    truncated.write_bytes(truncated.read_bytes()[:-40])
    corrupt = tmp_path / "corrupt.npz"
    np.savez(corrupt, x=np.arange(1000))
    raw = bytearray(corrupt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside the array's bytes: the member fails its CRC
    corrupt.write_bytes(bytes(raw))
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    foreign = tmp_path / "foreign.npz"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("config.json", "{}")
    return {
        "missing": (str(tmp_path / "nope.npz"), "no such file"),
        "directory": (str(tmp_path), "is a directory"),
        "not-a-zip": (str(text), "not a valid .npz file"),
        "object-arrays": (str(objects), "object arrays"),
        "truncated": (str(truncated), "not a valid .npz file"),
        "corrupt": (str(corrupt), "damaged .npz file"),
        "empty": (str(empty), "holds no arrays"),
        "foreign-zip": (str(foreign), "'config.json' is not a numpy array"),
        "neither": ("some data", "neither an existing .npz file nor module:function"),
        "blank": ("", "give an .npz file or module:function"),
        "no-module": ("mc_no_such_module_xyz:make", "cannot import 'mc_no_such_module_xyz'"),
        "broken-module": ("mc_probe_data_bad:make", "cannot import 'mc_probe_data_bad': ZeroDivisionError"),
        "no-attribute": ("mc_probe_data_b:missing", "has no attribute 'missing'"),
        "not-callable": ("mc_probe_data_b:VALUE", "'VALUE' is not callable (int)"),
        "raises": ("mc_probe_data_b:explode", "explode() raised ValueError: first line only"),
        "returns-none": ("mc_probe_data_b:nothing", "returned None"),
    }


BAD_SPECS = ["missing", "directory", "not-a-zip", "object-arrays", "truncated", "corrupt", "empty", "foreign-zip",
             "neither", "blank", "no-module", "broken-module", "no-attribute", "not-callable", "raises",
             "returns-none"]


@pytest.mark.parametrize("case", BAD_SPECS)
def test_bad_data_option_gets_a_one_line_reason(case, tmp_path, monkeypatch):
    write_module(tmp_path, "mc_probe_data_b", """
        VALUE = 3

        def explode():
            raise ValueError("first line only\\nsecond line")

        def nothing():
            return None
    """)
    write_module(tmp_path, "mc_probe_data_bad", "1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec, fragment = bad_npz_files(tmp_path)[case]
    with pytest.raises(DataError) as excinfo:
        load_data_option(spec)
    message = assert_one_line(excinfo, fragment, f"--data {spec}")
    assert "second line" not in message


def test_module_imports_only_stdlib_and_the_plan():
    tree = ast.parse(DATA_PY.read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module if node.module.startswith("maskcheck") else node.module.split(".")[0])
    # maskcheck.interrupts is standard library only (what stops a run vs one target)
    assert top - {"maskcheck.dynamic.plan", "maskcheck.interrupts"} <= set(sys.stdlib_module_names) | {"__future__"}, top
    assert "maskcheck.dynamic.plan" in top
