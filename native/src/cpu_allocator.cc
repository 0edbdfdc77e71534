// libtorch's CPU allocator, replaced for large blocks.
//
// Tensors of 1 MiB and more get their own memory mapping. A freed one is kept idle for
// reuse: the next request it can hold takes the smallest such block (its tail unmapped when
// the block is more than 1/8 larger than asked). Idle blocks are unmapped, oldest first,
// so that live plus idle bytes stay within the most ever live at once plus a slack
// (VILBERT_CPU_CACHE_MB, default 64), and after 10 s unused. Mappings of 2 MiB and more
// are aligned for transparent huge pages and advised to use them. Smaller tensors stay
// with libtorch's default allocator (glibc's heap).
//
// Why: with glibc's heap for everything (M_MMAP_MAX 0, no trimming, see addon.cc) a forward
// pass reuses warm memory, but the heap fragments: the full model's B=32 forward peaked at
// 1.86-1.95 GiB against the reference's 1.59 GiB, though its live tensors peak lower. With
// a fresh mapping for every large tensor (glibc's mmap) the peak is low but each is faulted
// in and zeroed afresh, 25-30% slower here. Bounding idle memory by the live peak keeps
// reuse high between peaks and adds at most the slack to the process's peak.
// VILBERT_SYSTEM_MALLOC=1 keeps libtorch's allocator.
#include "handle.h"

#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace vt {
namespace {

constexpr size_t kLargeBlock = size_t{1} << 20;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kPage = 4096;
constexpr auto kIdleTimeout = std::chrono::seconds(10);
using Clock = std::chrono::steady_clock;

struct Stats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  size_t idleBytes = 0;
  size_t liveBytes = 0;
  size_t peakLiveBytes = 0;
  size_t peakBytes = 0;  // live + idle, the mappings this allocator holds
};

class LargeBlockAllocator final : public c10::Allocator {
  struct Idle {
    void* data;
    uint64_t age;
    Clock::time_point freed;
  };
  using IdleBySize = std::multimap<size_t, Idle>;
  using IdleByAge = std::map<uint64_t, IdleBySize::iterator>;

 public:
  LargeBlockAllocator(c10::Allocator* small, size_t slack) : small_(small), slack_(slack) {}

  c10::DataPtr allocate(size_t bytes) const override {
    if (bytes < kLargeBlock) return small_->allocate(bytes);
    void* data = take(bytes);
    return {data, data, &LargeBlockAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &LargeBlockAllocator::release; }

  Stats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  size_t slack() const { return slack_; }

  // Unmaps every idle block (before retrying a failed mapping, or when asked); returns the bytes unmapped.
  size_t dropIdle() const {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t before = stats_.idleBytes;
    while (!byAge_.empty()) unmapIdle(byAge_.begin());
    return before;
  }

  // Starts the peaks afresh from what is held now (e.g. once a model is loaded and converted).
  void resetPeaks() const {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peakLiveBytes = stats_.liveBytes;
    stats_.peakBytes = stats_.liveBytes + stats_.idleBytes;
  }

  // Frees a block from allocate() or raw_allocate(): large ones by the table, others
  // through the default allocator's deleter.
  static void release(void* data);

 private:
  void* take(size_t bytes) const {
    const size_t size = (bytes + kPage - 1) / kPage * kPage;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto idle = idle_.lower_bound(size);
      if (idle != idle_.end()) {
        void* data = idle->second.data;
        size_t mapped = idle->first;
        byAge_.erase(idle->second.age);
        idle_.erase(idle);
        stats_.idleBytes -= mapped;
        // Much larger than asked: the block's tail goes back to the system, its head (already
        // faulted in) is reused.
        if (mapped - size > size / 8) {
          munmap(static_cast<uint8_t*>(data) + size, mapped - size);
          mapped = size;
        }
        stats_.liveBytes += mapped;
        stats_.peakLiveBytes = std::max(stats_.peakLiveBytes, stats_.liveBytes);
        live_.emplace(data, mapped);
        ++stats_.hits;
        return data;
      }
      ++stats_.misses;
    }
    void* data = map(size);
    if (data == nullptr) {
      dropIdle();
      data = map(size);
    }
    if (data == nullptr) {
      throw c10::Error({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                       "CPU out of memory: could not map " + std::to_string(bytes) + " bytes for a tensor");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    live_.emplace(data, size);
    stats_.liveBytes += size;
    stats_.peakLiveBytes = std::max(stats_.peakLiveBytes, stats_.liveBytes);
    trimIdle();
    stats_.peakBytes = std::max(stats_.peakBytes, stats_.liveBytes + stats_.idleBytes);
    return data;
  }

  static void* map(size_t size) {
    if (size < kHugePage) {
      void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      return data == MAP_FAILED ? nullptr : data;
    }
    // Over-map by one huge page and unmap the ends, so the block starts 2 MiB-aligned.
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t end = start + size + kHugePage;
    if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
    auto* data = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
    madvise(data, size, MADV_HUGEPAGE);
#endif
    return data;
  }

  // Back to idle, then trimIdle. False when `data` is not a large block.
  bool giveBack(void* data) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = live_.find(data);
    if (found == live_.end()) return false;
    const size_t size = found->second;
    live_.erase(found);
    stats_.liveBytes -= size;
    const uint64_t age = nextAge_++;
    byAge_.emplace(age, idle_.emplace(size, Idle{data, age, Clock::now()}));
    stats_.idleBytes += size;
    trimIdle();
    return true;
  }

  // Unmaps the oldest idle blocks while live + idle exceeds the live peak plus the slack,
  // and every block idle for longer than kIdleTimeout. Called with the mutex held.
  void trimIdle() const {
    const size_t bound = stats_.peakLiveBytes + slack_;
    const Clock::time_point stale = Clock::now() - kIdleTimeout;
    while (!byAge_.empty()) {
      auto idle = byAge_.begin()->second;
      if (stats_.liveBytes + stats_.idleBytes <= bound && idle->second.freed > stale) break;
      unmapIdle(byAge_.begin());
    }
  }

  void unmapIdle(IdleByAge::iterator oldest) const {
    auto idle = oldest->second;
    munmap(idle->second.data, idle->first);
    stats_.idleBytes -= idle->first;
    idle_.erase(idle);
    byAge_.erase(oldest);
  }

  c10::Allocator* small_;
  const size_t slack_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, size_t> live_;
  mutable IdleBySize idle_;
  mutable IdleByAge byAge_;
  mutable uint64_t nextAge_ = 0;
  mutable Stats stats_;
};

LargeBlockAllocator* gAllocator = nullptr;
c10::DeleterFnPtr gSmallDeleter = nullptr;

void LargeBlockAllocator::release(void* data) {
  if (data == nullptr) return;
  if (gAllocator->giveBack(data)) return;
  gSmallDeleter(data);
}

size_t slackFromEnvironment() {
  const char* text = std::getenv("VILBERT_CPU_CACHE_MB");
  if (text == nullptr || *text == '\0') return size_t{64} << 20;
  char* end = nullptr;
  const unsigned long long megabytes = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') return size_t{64} << 20;
  return static_cast<size_t>(megabytes) << 20;
}

// cpuAllocatorStats(): what the large-block allocator holds, or null when it is not installed.
Napi::Value cpuAllocatorStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (gAllocator == nullptr) return env.Null();
  const Stats stats = gAllocator->stats();
  auto result = Napi::Object::New(env);
  result.Set("hits", static_cast<double>(stats.hits));
  result.Set("misses", static_cast<double>(stats.misses));
  result.Set("liveBytes", static_cast<double>(stats.liveBytes));
  result.Set("idleBytes", static_cast<double>(stats.idleBytes));
  result.Set("slackBytes", static_cast<double>(gAllocator->slack()));
  result.Set("peakLiveBytes", static_cast<double>(stats.peakLiveBytes));
  result.Set("peakBytes", static_cast<double>(stats.peakBytes));
  return result;
}

// cpuAllocatorEmptyCache(): unmaps the idle blocks now (as torch.cuda.empty_cache does for
// its cache) and starts the peak counts afresh; returns the bytes given back to the system.
Napi::Value cpuAllocatorEmptyCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (gAllocator == nullptr) return Napi::Number::New(env, 0);
  const size_t freed = gAllocator->dropIdle();
  gAllocator->resetPeaks();
  return Napi::Number::New(env, static_cast<double>(freed));
}

}  // namespace

void installCpuAllocator() {
  if (gAllocator != nullptr || std::getenv("VILBERT_SYSTEM_MALLOC") != nullptr) return;
  c10::Allocator* small = c10::GetDefaultCPUAllocator();
  gSmallDeleter = small->raw_deleter();
  if (gSmallDeleter == nullptr) return;  // cannot route raw frees: keep libtorch's allocator
  gAllocator = new LargeBlockAllocator(small, slackFromEnvironment());  // lives as long as the process
  c10::SetCPUAllocator(gAllocator, /*priority=*/1);
}

void initCpuAllocator(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuAllocatorStats", Napi::Function::New(env, cpuAllocatorStats));
  exports.Set("cpuAllocatorEmptyCache", Napi::Function::New(env, cpuAllocatorEmptyCache));
}

}  // namespace vt
