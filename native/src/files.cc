// Whole-file reads and CRC-32 for checkpoint loading.
//
// readFile reads into memory from libtorch's CPU allocator (for files of 2 MiB and more a
// huge-page-aligned mapping, cpu_allocator.cc) instead of a zero-filled JavaScript buffer:
// on this project's VM a 4 KiB page fault costs ~3.5 us, so faulting in 1 GiB of fresh
// heap took ~0.9 s of a 1 GiB checkpoint load. Tensors can then be made over the file's
// bytes without a copy (tensorFromFileBytes: they hold the file's memory), and
// releaseFile drops the buffer's own hold at once instead of at its garbage collection.
// crc32 runs zlib's crc32 on chunks in parallel and joins them with crc32_combine64 (zlib
// does ~1.8 GB/s on one core here).
#include "handle.h"

#include <ATen/Parallel.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace vt {
namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// The buffers from readFile still held, by start address: their owning byte tensor.
std::mutex gFilesMutex;
std::map<const uint8_t*, at::Tensor> gFiles;

// The held file buffer containing [data, data + bytes), or an undefined tensor.
at::Tensor fileContaining(const uint8_t* data, size_t bytes) {
  std::lock_guard<std::mutex> lock(gFilesMutex);
  auto after = gFiles.upper_bound(data);
  if (after == gFiles.begin()) return {};
  const auto& [start, owner] = *std::prev(after);
  const size_t size = owner.nbytes();
  if (data + bytes > start + size) return {};
  return owner;
}

// Drops the registry's hold on a file buffer (its memory lives on in tensors made over it).
// True when it was still held.
bool forget(Napi::Env env, const uint8_t* start) {
  std::lock_guard<std::mutex> lock(gFilesMutex);
  auto found = gFiles.find(start);
  if (found == gFiles.end()) return false;
  Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(found->second.nbytes()));
  gFiles.erase(found);
  return true;
}

// readFile(path, maxBytes): the file's bytes as an ArrayBuffer, held until releaseFile or its
// collection (its size is reported to V8 as external memory meanwhile). Errors say what
// failed, without the path (the caller names the file).
Napi::Value readFile(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "readFile(path: string, maxBytes)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    const int64_t maxBytes = toInt64(info[1], "maxBytes");
    Fd file{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) throw Napi::Error::New(env, std::string("cannot open: ") + std::strerror(errno));
    struct stat status {};
    if (fstat(file.fd, &status) != 0) throw Napi::Error::New(env, std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(status.st_mode)) throw Napi::Error::New(env, "not a regular file");
    if (status.st_size > maxBytes) {
      throw Napi::Error::New(env, "file of " + std::to_string(status.st_size) + " bytes is larger than the largest buffer (" +
                                      std::to_string(maxBytes) + " bytes)");
    }
    const auto size = static_cast<size_t>(status.st_size);
    at::Tensor owner = at::empty({static_cast<int64_t>(size)}, at::TensorOptions().dtype(at::kByte));
    auto* bytes = static_cast<uint8_t*>(owner.data_ptr());
    size_t done = 0;
    while (done < size) {
      const ssize_t count = pread(file.fd, bytes + done, std::min<size_t>(size - done, size_t{1} << 30), static_cast<off_t>(done));
      if (count < 0 && errno == EINTR) continue;
      if (count <= 0) {
        const std::string reason = count < 0 ? std::strerror(errno) : "the file shrank while being read";
        throw Napi::Error::New(env, "read failed after " + std::to_string(done) + " of " + std::to_string(size) + " bytes: " + reason);
      }
      done += static_cast<size_t>(count);
    }
    if (size == 0) return Napi::ArrayBuffer::New(env, 0);
    {
      std::lock_guard<std::mutex> lock(gFilesMutex);
      gFiles.emplace(bytes, owner);
    }
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(size));
    return Napi::ArrayBuffer::New(env, bytes, size, [](Napi::Env env, void* data) { forget(env, static_cast<const uint8_t*>(data)); });
  });
}

// releaseFile(buffer): for an ArrayBuffer from readFile, detaches it (every view over it
// reads as empty from then on) and drops its hold on the memory, which tensors made over it
// keep while they live. Returns false for any other buffer, which is left alone.
Napi::Value releaseFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "releaseFile(buffer: ArrayBuffer)");
  auto buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached() || buffer.ByteLength() == 0) return Napi::Boolean::New(env, false);
  const bool held = forget(env, static_cast<const uint8_t*>(buffer.Data()));
  if (held) buffer.Detach();
  return Napi::Boolean::New(env, held);
}

// tensorFromFileBytes(bytes, shape, dtype): a tensor over the bytes without copying them
// when they lie in a buffer from readFile and are aligned for the dtype (the tensor holds
// that buffer's memory, and writing into one writes into the other); null otherwise.
Napi::Value tensorFromFileBytes(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "tensorFromFileBytes expects a TypedArray");
    auto typed = info[0].As<Napi::TypedArray>();
    const std::vector<int64_t> shape = toShape(info[1]);
    const auto dtype = static_cast<at::ScalarType>(toInt64(info[2], "dtype"));
    const auto options = at::TensorOptions().dtype(dtype);
    const size_t elementSize = c10::elementSize(dtype);
    int64_t count = 1;
    for (int64_t dim : shape) count *= dim;
    if (typed.ByteLength() != static_cast<size_t>(count) * elementSize) {
      throw Napi::RangeError::New(env, "buffer holds " + std::to_string(typed.ByteLength()) + " bytes but shape and dtype need " +
                                           std::to_string(static_cast<size_t>(count) * elementSize));
    }
    auto* data = static_cast<uint8_t*>(typed.ArrayBuffer().Data()) + typed.ByteOffset();
    if (count == 0 || reinterpret_cast<uintptr_t>(data) % elementSize != 0) return env.Null();
    at::Tensor owner = fileContaining(data, typed.ByteLength());
    if (!owner.defined()) return env.Null();
    return wrap(env, at::from_blob(data, shape, [owner](void*) mutable { owner.reset(); }, options));
  });
}

constexpr size_t kCrcChunk = size_t{1} << 20;

// crc32(bytes): CRC-32 (ISO-HDLC, as zip uses) of a typed array's bytes.
Napi::Value crc32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "crc32(bytes: Uint8Array)");
  auto typed = info[0].As<Napi::TypedArray>();
  const auto* data = static_cast<const uint8_t*>(typed.ArrayBuffer().Data()) + typed.ByteOffset();
  const size_t size = typed.ByteLength();
  const int64_t chunks = static_cast<int64_t>((size + kCrcChunk - 1) / kCrcChunk);
  std::vector<uLong> parts(static_cast<size_t>(chunks), 0);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const size_t offset = static_cast<size_t>(chunk) * kCrcChunk;
      parts[static_cast<size_t>(chunk)] = crc32_z(0, data + offset, std::min(kCrcChunk, size - offset));
    }
  });
  uLong crc = crc32_z(0, nullptr, 0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const size_t offset = static_cast<size_t>(chunk) * kCrcChunk;
    crc = crc32_combine64(crc, parts[static_cast<size_t>(chunk)], static_cast<z_off64_t>(std::min(kCrcChunk, size - offset)));
  }
  return Napi::Number::New(env, static_cast<double>(crc));
}

}  // namespace

void initFiles(Napi::Env env, Napi::Object exports) {
  exports.Set("readFile", Napi::Function::New(env, readFile));
  exports.Set("releaseFile", Napi::Function::New(env, releaseFile));
  exports.Set("tensorFromFileBytes", Napi::Function::New(env, tensorFromFileBytes));
  exports.Set("crc32", Napi::Function::New(env, crc32));
}

}  // namespace vt
