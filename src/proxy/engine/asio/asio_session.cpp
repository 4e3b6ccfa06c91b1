#include "switchyard/proxy/engine/asio/asio_session.h"

#include <array>
#include <cerrno>
#include <cstring>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <netinet/tcp.h>

#include "switchyard/proxy/engine/asio/asio_worker.h"
#include "switchyard/proxy/reset_relay.h"

namespace switchyard::proxy::asio_engine {
namespace {

using boost::system::error_code;
using namespace boost::asio::experimental::awaitable_operators;
using Kind = SessionAction::Kind;

tcp::endpoint toAsioEndpoint(const routing::BackendState& backend) {
    tcp::endpoint ep;
    std::memcpy(ep.data(), &backend.sockaddr, backend.sockaddrLen);
    ep.resize(backend.sockaddrLen);
    return ep;
}

// Errors of a socket this session closed itself: the session is ending already.
bool closedHere(const error_code& ec) {
    return ec == net::error::operation_aborted || ec == net::error::bad_descriptor;
}

} // namespace

AsioSession::AsioSession(AsioWorker& worker, tcp::socket client, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), client_(std::move(client)), upstream_(worker.context()),
      core_(worker.sessionContext(), id, serviceIndex) {}

void AsioSession::close(CloseReason reason) {
    perform(core_.on(SessionEvent::closeRequested(reason)));
    closeSockets();
}

void AsioSession::closeSockets() {
    error_code ignored;
    client_.close(ignored);
    upstream_.close(ignored);
}

void AsioSession::perform(const SessionAction& a) {
    error_code ignored;
    switch (a.kind) {
    case Kind::ShutdownWrite:
        socketOf(sinkOf(a.direction)).shutdown(tcp::socket::shutdown_send, ignored);
        if (a.moveTimer && idleTimer_) {
            idleRearm_ = true;
            idleTimer_->cancel();
        }
        return;
    case Kind::Close:
        if (a.reset) resetOnClose(socketOf(a.resetSide).native_handle());
        closeSockets();
        return;
    default: return;   // the coroutines perform the others in turn
    }
}

net::awaitable<void> AsioSession::run() {
    // The session's end is counted however the coroutine ends.
    struct Finish {
        SessionCore& core;
        ~Finish() { core.finish(); }
    } finish{core_};
    SessionAction a = core_.on(SessionEvent::accepted(client_.native_handle()));
    error_code ec;
    if (a.kind != Kind::Close) client_.set_option(tcp::no_delay(true), ec);
    if (a.kind == Kind::ReadHeader) a = co_await readProxyHeader(a.at);
    while (a.kind == Kind::Connect) a = co_await connect(a);
    if (a.kind == Kind::SendPreamble || a.kind == Kind::Relay) {
        worker_.sessionConnected(*this);
        client_.non_blocking(true, ec);
        upstream_.non_blocking(true, ec);
        // The PROXY header goes first, before any client byte (and with the bytes
        // that came in with an accepted header); a backend that fails it skips the relay.
        if (a.kind == Kind::SendPreamble) a = co_await sendPreamble();
        if (a.kind == Kind::Relay)
            co_await ((pump(Direction::ClientToBackend) && pump(Direction::BackendToClient)) || watchIdle(a.at));
    }
    perform(a);
    core_.finish();
    closeSockets();
}

net::awaitable<SessionAction> AsioSession::readHeaderBytes() {
    std::array<uint8_t, 1024> buffer;
    for (;;) {
        error_code ec;
        const std::size_t n =
            co_await client_.async_read_some(net::buffer(buffer), net::redirect_error(net::use_awaitable, ec));
        // Cancelled: the deadline passed, or the session was closed from outside.
        if (ec == net::error::operation_aborted) co_return SessionAction{};
        if (ec) co_return core_.on(SessionEvent::headerEnded(ec == net::error::eof ? 0 : ec.value()));
        const SessionAction a = core_.on(SessionEvent::headerBytes({buffer.data(), n}));
        if (a.kind != Kind::ReadHeader) co_return a;
    }
}

net::awaitable<SessionAction> AsioSession::readProxyHeader(routing::TimePoint at) {
    net::steady_timer timer(worker_.context());
    timer.expires_at(at);
    error_code timerEc;   // cancelled when the header came first: an error code, not an exception
    auto result =
        co_await (readHeaderBytes() || timer.async_wait(net::redirect_error(net::use_awaitable, timerEc)));
    if (result.index() == 1) co_return core_.on(SessionEvent::timerFired(std::chrono::steady_clock::now()));
    co_return std::get<0>(result);
}

net::awaitable<SessionAction> AsioSession::sendPreamble() {
    const std::string_view preamble = core_.preamble();
    error_code ec;
    co_await net::async_write(upstream_, net::buffer(preamble.data(), preamble.size()),
                              net::redirect_error(net::use_awaitable, ec));
    co_return core_.on(ec ? SessionEvent::failed(Side::Backend) : SessionEvent::preambleSent(preamble.size()));
}

net::awaitable<SessionAction> AsioSession::connect(const SessionAction& attempt) {
    error_code ec;
    const tcp::endpoint endpoint = toAsioEndpoint(*attempt.backend);
    upstream_.close(ec);
    upstream_.open(endpoint.protocol(), ec);
    if (ec) co_return core_.on(SessionEvent::connectFailed(ec.value()));
    upstream_.set_option(tcp::no_delay(true), ec);
    net::steady_timer timer(worker_.context());
    timer.expires_after(attempt.timeout);
    // The timer's cancellation (the usual case: connect won) comes back as an
    // error code, not as an exception thrown and caught per connection.
    error_code timerEc;
    auto result = co_await (upstream_.async_connect(endpoint, net::redirect_error(net::use_awaitable, ec)) ||
                            timer.async_wait(net::redirect_error(net::use_awaitable, timerEc)));
    if (result.index() == 1) ec = net::error::timed_out;
    if (!ec) co_return core_.on(SessionEvent::connectOk(std::chrono::steady_clock::now()));
    upstream_.close(timerEc);
    co_return core_.on(SessionEvent::connectFailed(ec.value()));
}

void AsioSession::finishDirection(Direction direction, const error_code& ec) {
    if (!ec || ec == net::error::eof)
        perform(core_.on(SessionEvent::eof(direction, std::chrono::steady_clock::now())));
    else if (!closedHere(ec))
        perform(core_.on(SessionEvent::failed(sourceOf(direction))));
    // An error on one side ends both: closing cancels the other direction.
    if (core_.closing()) closeSockets();
}

net::awaitable<void> AsioSession::pump(Direction direction) {
    tcp::socket& from = socketOf(sourceOf(direction));
    tcp::socket& to = socketOf(sinkOf(direction));
    error_code ec;
    for (;;) {
        // Read first, wait only on EAGAIN: a busy stream skips the reactor and
        // an idle one holds no buffer.
        BufferPool::Lease buffer = worker_.buffers().acquire();
        const std::size_t n = from.read_some(net::buffer(buffer.data(), buffer.size()), ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
            buffer.release();
            co_await from.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            continue;
        }
        if (ec) break;
        core_.noteRead(direction, n, n == buffer.size(), std::chrono::steady_clock::now());
        // Write first too: the socket usually takes it all, and the async path
        // (reactor, completion handler, coroutine resume) is only for the rest.
        std::size_t written = to.write_some(net::buffer(buffer.data(), n), ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
            written = 0;
            ec = {};
        }
        if (!ec && written < n)
            co_await net::async_write(to, net::buffer(buffer.data() + written, n - written),
                                      net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            // The receiving side failed: that side is the one that reset.
            if (!closedHere(ec)) perform(core_.on(SessionEvent::failed(sinkOf(direction))));
            ec = net::error::operation_aborted;
            break;
        }
        if (core_.takeBulkTurn(direction) && worker_.pipes()) {
            buffer.release();
            // Without a pipe, the core asks again after the next two whole buffers.
            if (std::optional<SplicePipe> pipe = worker_.pipes()->acquire(worker_.openSessions())) {
                const bool backToBuffers = co_await splicePump(direction, std::move(*pipe), ec);
                if (!backToBuffers) break;
            }
        }
    }
    finishDirection(direction, ec);
}

net::awaitable<bool> AsioSession::splicePump(Direction direction, SplicePipe pipe, error_code& ec) {
    tcp::socket& from = socketOf(sourceOf(direction));
    tcp::socket& to = socketOf(sinkOf(direction));
    for (;;) {
        while (pipe.bytes() > 0) {
            const SpliceResult out = pipe.drain(to.native_handle());
            if (out.kind == SpliceResult::Kind::Failed) {
                perform(core_.on(SessionEvent::failed(sinkOf(direction))));   // the receiving side failed
                ec = net::error::operation_aborted;
                break;
            }
            if (out.bytes > 0) core_.noteSinkProgress(std::chrono::steady_clock::now());
            if (pipe.bytes() == 0) break;
            co_await to.async_wait(tcp::socket::wait_write, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
        }
        if (ec) break;
        const SpliceResult in = pipe.fill(from.native_handle());
        if (in.kind == SpliceResult::Kind::WouldBlock) {
            co_await from.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            continue;
        }
        if (in.kind == SpliceResult::Kind::EndOfStream) {
            ec = net::error::eof;
            break;
        }
        if (in.kind == SpliceResult::Kind::NotSpliceable) {   // the pipe is empty here
            worker_.pipes()->release(std::move(pipe));
            co_return true;
        }
        if (in.kind == SpliceResult::Kind::Failed) {
            ec = error_code(in.error, boost::system::system_category());
            break;
        }
        core_.noteSpliced(direction, in.bytes, std::chrono::steady_clock::now());
    }
    worker_.pipes()->release(std::move(pipe));
    co_return false;
}

net::awaitable<void> AsioSession::watchIdle(routing::TimePoint deadline) {
    net::steady_timer timer(worker_.context());
    idleTimer_ = &timer;
    struct Forget {
        AsioSession& s;
        ~Forget() { s.idleTimer_ = nullptr; }
    } forget{*this};
    for (;;) {
        timer.expires_at(deadline);
        error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            // A half-close asked for an earlier deadline; anything else: the relay ended first.
            const auto state = co_await net::this_coro::cancellation_state;
            if (idleRearm_ && state.cancelled() == net::cancellation_type::none) {
                idleRearm_ = false;
                deadline = core_.idleDeadline();
                continue;
            }
            co_return;
        }
        const SessionAction a = core_.on(SessionEvent::timerFired(std::chrono::steady_clock::now()));
        if (a.kind != Kind::ArmTimer) co_return;   // idle: ending this watch ends the pumps
        deadline = a.at;
    }
}

} // namespace switchyard::proxy::asio_engine
