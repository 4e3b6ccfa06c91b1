#pragma once

// A list of immutable, shared items: copying the list copies pointers, so two
// versions of a large state share every item neither of them changed. Reading
// it looks like reading a vector of values (range-for and operator[] yield
// `const T&`); replacing one item is `set()` and costs one pointer.
// The control plane's state and the routing snapshot are both built on it, so
// a change of one service copies that one service (docs/semantics.md "Cost of a change").

#include <cstddef>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

namespace switchyard {

template <class T>
class SharedList {
public:
    using Ptr = std::shared_ptr<const T>;

    class const_iterator {
    public:
        using iterator_category = std::random_access_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = const T*;
        using reference = const T&;

        const_iterator() = default;
        explicit const_iterator(typename std::vector<Ptr>::const_iterator it) : it_(it) {}
        reference operator*() const { return **it_; }
        pointer operator->() const { return it_->get(); }
        const_iterator& operator++() { ++it_; return *this; }
        const_iterator operator++(int) { auto old = *this; ++it_; return old; }
        const_iterator& operator--() { --it_; return *this; }
        const_iterator& operator+=(difference_type n) { it_ += n; return *this; }
        const_iterator operator+(difference_type n) const { return const_iterator(it_ + n); }
        difference_type operator-(const const_iterator& o) const { return it_ - o.it_; }
        reference operator[](difference_type n) const { return *it_[n]; }
        bool operator==(const const_iterator& o) const = default;
        auto operator<=>(const const_iterator& o) const = default;

    private:
        typename std::vector<Ptr>::const_iterator it_;
    };

    std::size_t size() const { return items_.size(); }
    bool empty() const { return items_.empty(); }
    void reserve(std::size_t n) { items_.reserve(n); }
    void clear() { items_.clear(); }

    const T& operator[](std::size_t i) const { return *items_[i]; }
    const T& back() const { return *items_.back(); }
    const Ptr& ptr(std::size_t i) const { return items_[i]; }

    const_iterator begin() const { return const_iterator(items_.begin()); }
    const_iterator end() const { return const_iterator(items_.end()); }

    void push_back(Ptr item) { items_.push_back(std::move(item)); }
    // Items are created mutable (make_shared<T>), so edit() may change one in place.
    void push_back(T item) { items_.push_back(std::make_shared<T>(std::move(item))); }
    void set(std::size_t i, Ptr item) { items_[i] = std::move(item); }

    // Copy-on-write: returns item i for changing, first replacing it with a
    // private copy unless this list is its only owner. Items given to
    // push_back(Ptr) or set() must have been created non-const.
    T& edit(std::size_t i) {
        if (items_[i].use_count() == 1) return const_cast<T&>(*items_[i]);
        auto copy = std::make_shared<T>(*items_[i]);
        T& ref = *copy;
        items_[i] = std::move(copy);
        return ref;
    }

    // True if item i is the very same object in both lists (nothing changed it).
    bool sameAt(std::size_t i, const SharedList& other) const {
        return i < other.items_.size() && items_[i] == other.items_[i];
    }

private:
    std::vector<Ptr> items_;
};

} // namespace switchyard
