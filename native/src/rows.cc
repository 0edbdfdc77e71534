// The feature reader's regions in one pass over the stored rows: the mean row, the kept
// rows, the padding cleared.
//
// A read writes hundreds of kilobytes into a fresh result, memory last touched long ago,
// so ordinary stores first read every target cache line from memory. Streaming
// (non-temporal) stores skip that read and leave the cache alone: measured on 50 rows of
// 2048 floats into cold memory here, 172 us with ordinary vector stores, 60 us with
// memcpy, 42 us streamed; into a cache-warm target streamed and ordinary stores are equal.
// SSE2's streaming stores are part of x86-64 itself; the AVX2 row kernel below is
// chosen at run time where the CPU has it, and other architectures take the plain loops.
// A reused, caller-owned target is warm, so callers may ask for ordinary stores instead. (The collate step's copies into a batch stay with
// TypedArray.set: glibc's memcpy was faster there than a streamed copy.)
#include "handle.h"

#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VT_STREAMING_STORES 1
#endif

namespace vt {
namespace {

constexpr uintptr_t kVector = 16;

// Leading floats of `target` before a 16-byte boundary (at most `count`).
int64_t unalignedHead(const float* target, int64_t count) {
  const uintptr_t misalignment = reinterpret_cast<uintptr_t>(target) % kVector;
  const int64_t head = misalignment == 0 ? 0 : static_cast<int64_t>((kVector - misalignment) / sizeof(float));
  return head < count ? head : count;
}

// sum[c] += row[c] for every column and, when out is given, out[c] = row[c]. The row may
// be unaligned (it sits inside a pickle, read in place from the LMDB map). Each column is
// still summed row by row, numpy's order for np.sum(features, axis=0) on this layout.
void sumRow(float* sum, float* out, const uint8_t* row, int64_t width, bool streaming) {
  int64_t column = 0;
#ifdef VT_STREAMING_STORES
  const auto* values = reinterpret_cast<const float*>(row);
  if (out != nullptr && !streaming) {
    for (; column + 4 <= width; column += 4) {
      const __m128 value = _mm_loadu_ps(values + column);
      _mm_storeu_ps(sum + column, _mm_add_ps(_mm_loadu_ps(sum + column), value));
      _mm_storeu_ps(out + column, value);
    }
  } else if (out != nullptr) {
    for (const int64_t head = unalignedHead(out, width); column < head; ++column) {
      float value;
      std::memcpy(&value, row + column * 4, 4);
      out[column] = value;
      sum[column] += value;
    }
    for (; column + 4 <= width; column += 4) {
      const __m128 value = _mm_loadu_ps(values + column);
      _mm_storeu_ps(sum + column, _mm_add_ps(_mm_loadu_ps(sum + column), value));
      _mm_stream_ps(out + column, value);
    }
  } else {
    for (; column + 4 <= width; column += 4) {
      _mm_storeu_ps(sum + column, _mm_add_ps(_mm_loadu_ps(sum + column), _mm_loadu_ps(values + column)));
    }
  }
#endif
  for (; column < width; ++column) {
    float value;
    std::memcpy(&value, row + column * 4, 4);
    if (out != nullptr) out[column] = value;
    sum[column] += value;
  }
}

void zeroFloats(float* target, int64_t count) {
  int64_t at = 0;
#ifdef VT_STREAMING_STORES
  for (const int64_t head = unalignedHead(target, count); at < head; ++at) target[at] = 0.0f;
  const __m128 zero = _mm_setzero_ps();
  for (; at + 4 <= count; at += 4) _mm_stream_ps(target + at, zero);
#endif
  for (; at < count; ++at) target[at] = 0.0f;
}

// Makes the streamed stores visible before JavaScript reads the memory.
void finishStreaming() {
#ifdef VT_STREAMING_STORES
  _mm_sfence();
#endif
}

#ifdef VT_STREAMING_STORES
// The AVX2 kernel goes row by row like sumRow, 64 columns (eight 256-bit vectors) at a
// time: those columns' sums come from the 8 KB sum array (it stays in L1), the row's
// values are added and copied, and the sums go back. Reading each row front to back keeps
// the hardware prefetchers on one sequential stream per row. An earlier kernel walked 64
// columns down all the rows instead; at -O2 GCC kept its eight sums on the stack, not in
// registers, and the 8 KB stride between rows defeated the prefetchers: measured here on
// 100 rows of 2048 floats from an L3-resident value into a warm target, 55-57 us for that
// walk, 17-21 us row by row (glibc memcpy of the same bytes: 13-15 us). `#pragma GCC
// unroll` keeps the eight vectors in registers. Each column is still summed row after row.
constexpr int64_t kChunkVectors = 8;
constexpr int64_t kChunk = kChunkVectors * 8;

template <bool kStream>
__attribute__((target("avx2"))) void copyChunksAvx2(float* sum, float* out, const uint8_t* in, int64_t rows, int64_t width, int64_t keep, int64_t begin, int64_t end) {
  for (int64_t row = 0; row < rows; ++row) {
    const auto* source = reinterpret_cast<const float*>(in + row * width * 4);
    float* target = out + (row + 1) * width;
    const bool kept = row < keep;
    for (int64_t column = begin; column < end; column += kChunk) {
      __m256 value[kChunkVectors];
#pragma GCC unroll 8
      for (int64_t v = 0; v < kChunkVectors; ++v) {
        value[v] = _mm256_loadu_ps(source + column + v * 8);
        _mm256_storeu_ps(sum + column + v * 8, _mm256_add_ps(_mm256_loadu_ps(sum + column + v * 8), value[v]));
      }
      if (!kept) continue;
#pragma GCC unroll 8
      for (int64_t v = 0; v < kChunkVectors; ++v) {
        if (kStream) {
          _mm256_stream_ps(target + column + v * 8, value[v]);
        } else {
          _mm256_storeu_ps(target + column + v * 8, value[v]);
        }
      }
    }
    // The columns outside [begin, end): the row's head and tail, with ordinary stores.
    if (begin > 0) sumRow(sum, kept ? target : nullptr, in + row * width * 4, begin, false);
    if (end < width) sumRow(sum + end, kept ? target + end : nullptr, in + (row * width + end) * 4, width - end, false);
  }
}

// Sums and copies with the AVX2 kernel where the CPU has it; false where it does not. The
// chunks start where the target rows are 32-byte aligned (streaming stores need it); a
// width that is not a multiple of 8 floats gives rows of different alignment, so ordinary
// stores are used there.
bool copyRowsAvx2(float* sum, float* out, const uint8_t* in, int64_t rows, int64_t width, int64_t keep, bool streaming) {
  static const bool has = __builtin_cpu_supports("avx2");
  if (!has || width < kChunk) return false;
  int64_t begin = 0;
  const bool stream = streaming && width % 8 == 0;
  if (stream) {
    const uintptr_t misalignment = reinterpret_cast<uintptr_t>(out + width) % 32;
    begin = misalignment == 0 ? 0 : static_cast<int64_t>((32 - misalignment) / sizeof(float));
  }
  const int64_t end = begin + (width - begin) / kChunk * kChunk;
  if (stream) {
    copyChunksAvx2<true>(sum, out, in, rows, width, keep, begin, end);
  } else {
    copyChunksAvx2<false>(sum, out, in, rows, width, keep, begin, end);
  }
  return true;
}
#endif

// copyRowsWithMeanF32(source, rows, width, keep, target): source holds `rows` float32 rows
// of `width` (little-endian bytes, any alignment). Target row 0 gets their mean,
// np.sum(features, axis=0) / rows in float32 (0 rows: NaN, as numpy); rows 1..keep the
// first `keep` source rows; every later target element is set to 0. Returns whether every
// element of the mean is finite: a float32 sum that met a NaN or an infinity stays
// non-finite (as does one that overflows), so this checks every summed row at no extra pass.
Napi::Value copyRowsWithMeanF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      !info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "copyRowsWithMeanF32(source: Uint8Array, rows, width, keep, target: Float32Array)");
  }
  auto source = info[0].As<Napi::Uint8Array>();
  auto target = info[4].As<Napi::Float32Array>();
  const int64_t rows = toInt64(info[1], "rows");
  const int64_t width = toInt64(info[2], "width");
  const int64_t keep = toInt64(info[3], "keep");
  const bool streaming = info.Length() < 6 || info[5].ToBoolean().Value();
  if (rows < 0 || width <= 0 || keep < 0 || keep > rows || static_cast<size_t>(rows * width * 4) > source.ByteLength() ||
      static_cast<size_t>((keep + 1) * width) > target.ElementLength()) {
    throw Napi::RangeError::New(env, "copyRowsWithMeanF32: rows x width exceeds the source, or keep + 1 rows the target");
  }
  const uint8_t* in = source.Data();
  float* out = target.Data();
  std::vector<float> sum(static_cast<size_t>(width), 0.0f);
  const size_t rowBytes = static_cast<size_t>(width) * 4;
  bool done = false;
#ifdef VT_STREAMING_STORES
  done = copyRowsAvx2(sum.data(), out, in, rows, width, keep, streaming);
#endif
  for (int64_t row = 0; !done && row < rows; ++row) {
    sumRow(sum.data(), row < keep ? out + (row + 1) * width : nullptr, in + row * rowBytes, width, streaming);
  }
  const int64_t written = (keep + 1) * width;
  if (streaming) {
    zeroFloats(out + written, static_cast<int64_t>(target.ElementLength()) - written);
  } else {
    std::memset(out + written, 0, (target.ElementLength() - static_cast<size_t>(written)) * sizeof(float));
  }
  finishStreaming();
  const float count = static_cast<float>(rows);
  float poison = 0.0f;  // x * 0 is 0 for finite x and NaN for NaN or an infinity
  for (int64_t column = 0; column < width; ++column) {
    out[column] = sum[column] / count;
    poison += out[column] * 0.0f;
  }
  return Napi::Boolean::New(env, poison == 0.0f);
}

}  // namespace

void initRows(Napi::Env env, Napi::Object exports) {
  exports.Set("copyRowsWithMeanF32", Napi::Function::New(env, copyRowsWithMeanF32));
}

}  // namespace vt
