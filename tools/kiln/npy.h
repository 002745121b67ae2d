// NumPy .npy files <-> host Tensors, for `kiln run --input NAME=FILE.npy` and --save-outputs.
//
// Reads format versions 1.0, 2.0 and 3.0 with little-endian (or byte-order-free) C-order data of
// dtype f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1. Files are untrusted: the header is parsed by a
// small bounded parser (no eval), every size is checked against the bytes present before any
// allocation, and anything else (big-endian, fortran_order True, object or structured dtypes,
// trailing bytes) is a kInvalidData or kUnsupported Status whose message names the file and
// the problem. Writes version 1.0 (2.0 only for headers past 64 KiB), as numpy.save does.
// Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cli {

// Decodes .npy bytes into a new host tensor. `what` names the source in errors (a path).
// kInvalidData for a malformed or truncated file; kUnsupported for a valid .npy kiln cannot
// take (big-endian, Fortran order, a dtype outside the list above).
Result<Tensor> npy_parse(std::span<const uint8_t> bytes, std::string_view what = "npy data");

// Reads and decodes the file at `path` (errors as npy_parse, plus kNotFound / kIoError).
Result<Tensor> npy_read(const std::string& path);

// Encodes a host tensor. kUnsupported for dtypes numpy has no type for (bf16): convert first.
Result<std::vector<uint8_t>> npy_serialize(const Tensor& tensor);

// Encodes `tensor` and writes it to `path` atomically (platform::write_file_atomic).
Status npy_write(const std::string& path, const Tensor& tensor);

// The numpy type string of a dtype ("<f4", "|b1"), or "" when numpy has none.
std::string npy_descr(DType dtype);

}  // namespace kiln::cli
