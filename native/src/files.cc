// Whole-file reads and CRC-32 for checkpoint loading.
//
// readFile reads into memory from libtorch's CPU allocator (for files of 2 MiB and more a
// huge-page-aligned mapping, cpu_allocator.cc) instead of a zero-filled JavaScript buffer:
// on this project's VM a 4 KiB page fault costs ~3.5 us, so faulting in 1 GiB of fresh
// heap took ~0.9 s of a 1 GiB checkpoint load. crc32 runs zlib's crc32 on chunks in
// parallel and joins them with crc32_combine64 (zlib does ~1.8 GB/s on one core here).
#include "handle.h"

#include <ATen/Parallel.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
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

// readFile(path): the file's bytes as an ArrayBuffer (freed when it is collected).
Napi::Value readFile(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "readFile(path: string)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    Fd file{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) throw Napi::Error::New(env, path + ": cannot open: " + std::strerror(errno));
    struct stat status {};
    if (fstat(file.fd, &status) != 0) throw Napi::Error::New(env, path + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(status.st_mode)) throw Napi::Error::New(env, path + ": not a regular file");
    const auto size = static_cast<size_t>(status.st_size);
    // A byte tensor owns the memory; the ArrayBuffer holds it until collected.
    auto* owner = new at::Tensor(at::empty({static_cast<int64_t>(size)}, at::TensorOptions().dtype(at::kByte)));
    auto* bytes = static_cast<uint8_t*>(owner->data_ptr());
    size_t done = 0;
    while (done < size) {
      const ssize_t count = pread(file.fd, bytes + done, std::min<size_t>(size - done, size_t{1} << 30), static_cast<off_t>(done));
      if (count < 0 && errno == EINTR) continue;
      if (count <= 0) {
        const std::string reason = count < 0 ? std::strerror(errno) : "the file shrank while being read";
        delete owner;
        throw Napi::Error::New(env, path + ": read failed after " + std::to_string(done) + " of " + std::to_string(size) + " bytes: " + reason);
      }
      done += static_cast<size_t>(count);
    }
    if (size == 0) {
      delete owner;
      return Napi::ArrayBuffer::New(env, 0);
    }
    return Napi::ArrayBuffer::New(env, bytes, size, [](Napi::Env, void*, at::Tensor* tensor) { delete tensor; }, owner);
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
  exports.Set("crc32", Napi::Function::New(env, crc32));
}

}  // namespace vt
