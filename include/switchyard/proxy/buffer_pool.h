#pragma once

// Per-worker pool of relay buffers. A session holds a buffer only while bytes
// are in flight, so an idle connection costs no buffer memory, and the hot path
// never allocates once the pool is warm. Single-threaded: one pool per worker.

#include <cstddef>
#include <memory>
#include <vector>

namespace switchyard::proxy {

class BufferPool {
public:
    static constexpr std::size_t kBufferSize = 16 * 1024;

    explicit BufferPool(std::size_t maxIdle = 512) : maxIdle_(maxIdle) {}

    class Lease {
    public:
        Lease() = default;
        Lease(BufferPool* pool, std::unique_ptr<char[]> data) : pool_(pool), data_(std::move(data)) {}
        Lease(Lease&&) noexcept = default;
        Lease& operator=(Lease&& other) noexcept {
            release();
            pool_ = other.pool_;
            data_ = std::move(other.data_);
            return *this;
        }
        ~Lease() { release(); }
        char* data() const { return data_.get(); }
        static constexpr std::size_t size() { return kBufferSize; }
        explicit operator bool() const { return data_ != nullptr; }
        void release() {
            if (data_) pool_->giveBack(std::move(data_));
        }

    private:
        BufferPool* pool_ = nullptr;
        std::unique_ptr<char[]> data_;
    };

    Lease acquire() {
        if (free_.empty()) return Lease(this, std::unique_ptr<char[]>(new char[kBufferSize]));
        auto data = std::move(free_.back());
        free_.pop_back();
        return Lease(this, std::move(data));
    }

    std::size_t idleCount() const { return free_.size(); }

private:
    void giveBack(std::unique_ptr<char[]> data) {
        if (free_.size() < maxIdle_) free_.push_back(std::move(data));
    }

    std::size_t maxIdle_;
    std::vector<std::unique_ptr<char[]>> free_;
};

} // namespace switchyard::proxy
