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
    : worker_(worker), client_(std::move(client)), upstream_(worker.context()), idleTimer_(worker.context()),
      core_(worker.sessionContext(), id, serviceIndex) {}

void AsioSession::close(CloseReason reason) {
    perform(core_.on(SessionEvent::closeRequested(reason)));
    closeSockets();
}

void AsioSession::closeSockets() {
    error_code ignored;
    client_.close(ignored);
    upstream_.close(ignored);
    idleTimer_.cancel();
}

void AsioSession::perform(const SessionAction& a) {
    error_code ignored;
    switch (a.kind) {
    case Kind::ShutdownWrite:
        socketOf(sinkOf(a.direction)).shutdown(tcp::socket::shutdown_send, ignored);
        if (a.thenClose) idleTimer_.cancel();   // the last wait: its end ends the session
        else if (a.moveTimer) armIdle(a.at);
        return;
    case Kind::Close:
        if (a.reset) resetOnClose(socketOf(a.resetSide).native_handle());
        closeSockets();
        return;
    default: return;   // the coroutines perform the others in turn
    }
}

net::awaitable<bool> AsioSession::run() {
    // The session's end is counted however the set-up ends (an exception too).
    struct Finish {
        SessionCore& core;
        bool relaying = false;
        ~Finish() {
            if (!relaying) core.finish();
        }
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
        if (a.kind == Kind::Relay) {
            finish.relaying = true;
            startRelay(a.at);
            co_return true;
        }
    }
    perform(a);
    core_.finish();
    closeSockets();
    co_return false;
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

void AsioSession::startRelay(routing::TimePoint idleDeadline) {
    armIdle(idleDeadline);   // a wait in flight from the start: nothing below can end the session early
    pump(Direction::ClientToBackend);
    pump(Direction::BackendToClient);
}

void AsioSession::completed() {
    if (pending_ > 0 || !core_.closing()) return;
    core_.finish();
    closeSockets();
    worker_.sessionEnded(core_.id());   // frees this
}

void AsioSession::waitThen(tcp::socket& socket, tcp::socket::wait_type wait, Direction direction, Step next) {
    ++pending_;
    socket.async_wait(wait, [this, direction, next](const error_code& ec) {
        --pending_;
        if (ec) finishDirection(direction, ec);
        else (this->*next)(direction);
        completed();
    });
}

void AsioSession::armIdle(routing::TimePoint at) {
    ++pending_;
    idleTimer_.expires_at(at);   // a wait for a later deadline ends with operation_aborted
    idleTimer_.async_wait([this](const error_code& ec) {
        --pending_;
        if (!ec && !core_.closing()) {
            // Reads moved the deadline on without touching the timer: re-armed only now.
            const SessionAction a = core_.on(SessionEvent::timerFired(std::chrono::steady_clock::now()));
            if (a.kind == Kind::ArmTimer) armIdle(a.at);
            else perform(a);
        }
        completed();
    });
}

void AsioSession::finishDirection(Direction direction, const error_code& ec) {
    releasePipe(direction);
    if (!ec || ec == net::error::eof)
        perform(core_.on(SessionEvent::eof(direction, std::chrono::steady_clock::now())));
    else if (!closedHere(ec))
        perform(core_.on(SessionEvent::failed(sourceOf(direction))));
    else
        closeSockets();   // an error on one side ends both: closing cancels the other direction
}

void AsioSession::writeFailed(Direction direction, const error_code& ec) {
    // The receiving side failed: that side is the one that reset.
    if (!closedHere(ec)) perform(core_.on(SessionEvent::failed(sinkOf(direction))));
    finishDirection(direction, net::error::operation_aborted);
}

void AsioSession::pump(Direction direction) {
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
            waitThen(from, tcp::socket::wait_read, direction, &AsioSession::pump);
            return;
        }
        if (ec) break;
        core_.noteRead(direction, n, n == buffer.size(), std::chrono::steady_clock::now());
        // Write first too: the socket usually takes it all, and the reactor is only for the rest.
        std::size_t written = to.write_some(net::buffer(buffer.data(), n), ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
            written = 0;
            ec = {};
        }
        if (ec) {
            writeFailed(direction, ec);
            return;
        }
        if (written < n) {
            Flow& f = flow(direction);
            f.buffer = std::move(buffer);
            ++pending_;
            net::async_write(to, net::buffer(f.buffer.data() + written, n - written),
                             [this, direction](const error_code& ec, std::size_t) {
                                 --pending_;
                                 flow(direction).buffer.release();
                                 if (ec) writeFailed(direction, ec);
                                 else if (!toSplice(direction)) pump(direction);
                                 completed();
                             });
            return;
        }
        buffer.release();
        if (toSplice(direction)) return;
    }
    finishDirection(direction, ec);
}

bool AsioSession::toSplice(Direction direction) {
    SplicePipePool* pool = worker_.pipes();
    if (!pool || !core_.takeBulkTurn(direction)) return false;
    // Without a pipe, the core asks again after the next two whole buffers.
    std::optional<SplicePipe>& pipe = flow(direction).pipe;
    pipe = pool->acquire(worker_.openSessions());
    if (!pipe) return false;
    splice(direction);
    return true;
}

void AsioSession::releasePipe(Direction direction) {
    std::optional<SplicePipe>& pipe = flow(direction).pipe;
    if (!pipe) return;
    worker_.pipes()->release(std::move(*pipe));
    pipe.reset();
}

void AsioSession::splice(Direction direction) {
    tcp::socket& from = socketOf(sourceOf(direction));
    tcp::socket& to = socketOf(sinkOf(direction));
    SplicePipe& pipe = *flow(direction).pipe;
    for (;;) {
        while (pipe.bytes() > 0) {
            const SpliceResult out = pipe.drain(to.native_handle());
            if (out.kind == SpliceResult::Kind::Failed) {
                releasePipe(direction);
                perform(core_.on(SessionEvent::failed(sinkOf(direction))));   // the receiving side failed
                return;
            }
            if (out.bytes > 0) core_.noteSinkProgress(std::chrono::steady_clock::now());
            if (pipe.bytes() == 0) break;
            waitThen(to, tcp::socket::wait_write, direction, &AsioSession::splice);
            return;
        }
        const SpliceResult in = pipe.fill(from.native_handle());
        switch (in.kind) {
        case SpliceResult::Kind::Moved:
            core_.noteSpliced(direction, in.bytes, std::chrono::steady_clock::now());
            break;
        case SpliceResult::Kind::WouldBlock: waitThen(from, tcp::socket::wait_read, direction, &AsioSession::splice); return;
        case SpliceResult::Kind::EndOfStream: finishDirection(direction, net::error::eof); return;
        case SpliceResult::Kind::NotSpliceable:   // the pipe is empty here: back to buffers
            releasePipe(direction);
            pump(direction);
            return;
        case SpliceResult::Kind::Failed:
            finishDirection(direction, error_code(in.error, boost::system::system_category()));
            return;
        }
    }
}

} // namespace switchyard::proxy::asio_engine
