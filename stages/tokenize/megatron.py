"""Token shards in Megatron-LM's indexed-dataset format (the `.bin` + `.idx` pair that
Megatron-LM, Megatron-Core, NeMo and GPT-NeoX read as `MMapIndexedDataset`/`IndexedDataset`).

`.bin`: every sequence's token ids back to back, little-endian, one dtype.
`.idx` (Megatron-Core `datasets/indexed_dataset.py`, `_IndexWriter`/`_IndexReader`):
    b"MMIDIDX\\x00\\x00"           9 bytes of header
    version                       uint64, 1
    dtype code                    uint8 (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
                                  6 float64, 7 float32, 8 uint16)
    sequence count N              uint64
    document count D              uint64 (entries of the document index: documents + 1)
    sequence lengths              int32[N], tokens per sequence
    sequence pointers             int64[N], byte offset of each sequence in .bin
    document indices              int64[D], [0, ..., N]: document i is sequences
                                  [doc[i], doc[i+1]); here one document = one sequence
"""
from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
               np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7,
               np.dtype(np.uint16): 8}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}
INT32_MAX = 2**31 - 1


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """The smallest integer dtype Megatron reads that holds every id: uint16 below 65,536
    ids (as Megatron's own `DType.optimal_dtype`), else int32."""
    if vocab_size > INT32_MAX + 1:
        raise ValueError(f"a vocabulary of {vocab_size:,} ids does not fit int32, the widest token dtype "
                         "Megatron's indexed dataset takes for ids")
    return np.dtype(np.uint16) if vocab_size <= 65_536 else np.dtype(np.int32)


class IndexedDatasetWriter:
    """Streams sequences into `.bin`, keeps their lengths, writes `.idx` on close."""

    def __init__(self, bin_path: Path, idx_path: Path, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.bin_path, self.idx_path = Path(bin_path), Path(idx_path)
        self._bin = open(self.bin_path, "wb")
        self.lengths: list[int] = []
        self.tokens = 0

    def add(self, ids) -> None:
        """One document as one sequence."""
        array = np.asarray(ids, dtype=self.dtype)
        self._bin.write(array.tobytes(order="C"))
        self.lengths.append(len(array))
        self.tokens += len(array)

    def add_many(self, sequences: list[list[int]]) -> None:
        if not sequences:
            return
        flat = np.array(list(itertools.chain.from_iterable(sequences)), dtype=self.dtype)
        self._bin.write(flat.tobytes(order="C"))
        self.lengths.extend(len(s) for s in sequences)
        self.tokens += len(flat)

    def close(self) -> None:
        self._bin.close()
        write_index(self.idx_path, self.lengths, self.dtype)


def write_index(idx_path: Path, lengths: list[int], dtype: np.dtype) -> None:
    sizes = np.asarray(lengths, dtype=np.int64)
    if len(sizes) and sizes.max() > INT32_MAX:
        raise ValueError(f"a sequence of {int(sizes.max()):,} tokens does not fit the index's int32 lengths")
    pointers = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1] * np.dtype(dtype).itemsize, out=pointers[1:])
    documents = np.arange(len(sizes) + 1, dtype=np.int64)      # one document = one sequence
    with open(idx_path, "wb") as fh:
        fh.write(HEADER)
        fh.write(struct.pack("<Q", VERSION))
        fh.write(struct.pack("<B", DTYPE_CODES[np.dtype(dtype)]))
        fh.write(struct.pack("<Q", len(sizes)))
        fh.write(struct.pack("<Q", len(documents)))
        fh.write(sizes.astype("<i4").tobytes(order="C"))
        fh.write(pointers.astype("<i8").tobytes(order="C"))
        fh.write(documents.astype("<i8").tobytes(order="C"))


@dataclass
class TokenShard:
    """One `.bin`/`.idx` pair, memory-mapped: `shard[i]` is sequence i as a read-only NumPy
    view into the mapped `.bin` (no copy)."""
    bin_path: Path
    dtype: np.dtype
    lengths: np.ndarray          # int32[N]
    pointers: np.ndarray         # int64[N], bytes
    documents: np.ndarray        # int64[N + 1]

    @classmethod
    def open(cls, prefix) -> "TokenShard":
        prefix = str(prefix)
        base = prefix[:-4] if prefix.endswith((".bin", ".idx")) else prefix
        dtype, lengths, pointers, documents = read_index(Path(base + ".idx"))
        return cls(Path(base + ".bin"), dtype, lengths, pointers, documents)

    def __post_init__(self):
        size = self.bin_path.stat().st_size
        self._data = (np.memmap(self.bin_path, dtype=self.dtype, mode="r") if size
                      else np.zeros(0, dtype=self.dtype))

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self._data[start:start + int(self.lengths[i])]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())


def read_index(idx_path: Path) -> tuple[np.dtype, np.ndarray, np.ndarray, np.ndarray]:
    """(dtype, sequence lengths, pointers, document indices) of an `.idx` file, mapped."""
    with open(idx_path, "rb") as fh:
        head = fh.read(len(HEADER) + 8 + 1 + 8 + 8)
    if head[:len(HEADER)] != HEADER:
        raise ValueError(f"{idx_path}: not a Megatron indexed-dataset index (no MMIDIDX header)")
    version, = struct.unpack("<Q", head[9:17])
    if version != VERSION:
        raise ValueError(f"{idx_path}: index version {version}, this reader knows {VERSION}")
    code, = struct.unpack("<B", head[17:18])
    count, = struct.unpack("<Q", head[18:26])
    docs, = struct.unpack("<Q", head[26:34])
    mapped = np.memmap(idx_path, mode="r", dtype=np.uint8)
    offset = 34
    lengths = np.frombuffer(mapped, dtype="<i4", count=count, offset=offset)
    offset += lengths.nbytes
    pointers = np.frombuffer(mapped, dtype="<i8", count=count, offset=offset)
    offset += pointers.nbytes
    documents = np.frombuffer(mapped, dtype="<i8", count=docs, offset=offset)
    return CODE_DTYPES[code], lengths, pointers, documents
