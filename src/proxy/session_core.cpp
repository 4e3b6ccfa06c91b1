#include "switchyard/proxy/session_core.h"

#include <cerrno>

#include "switchyard/telemetry/access_log.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy {
namespace {

const auto& log() {
    static const auto logger = telemetry::logger("proxy");
    return logger;
}

SessionAction actionOf(SessionAction::Kind kind) {
    SessionAction a;
    a.kind = kind;
    return a;
}

} // namespace

SessionCore::SessionCore(SessionContext& worker, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), id_(id), serviceIndex_(static_cast<uint32_t>(serviceIndex)) {}

const routing::ServiceRoute* SessionCore::service() const {
    if (!setup_ || !setup_->snapshot) return nullptr;
    return &setup_->snapshot->services[serviceIndex_];
}

std::string_view SessionCore::preamble() const {
    if (!setup_) return {};
    return std::string_view(setup_->preamble).substr(setup_->preambleSent);
}

SessionAction SessionCore::on(const SessionEvent& e) {
    using Kind = SessionEvent::Kind;
    if (e.kind == Kind::CloseRequested) {
        if (closing()) {
            reason_.note(e.reason);
            return {};
        }
        // Closed before reaching a backend: counted by reason like any other such end.
        if (state_ == SessionState::Header || state_ == SessionState::Connecting) {
            reason_.note(e.reason);
            countClosedWithoutBackend(*serviceState_, reason_.reason());
        }
        return close(e.reason);
    }
    // What was in flight when the session closed completes with errors: nothing changes.
    if (closing()) return {};
    switch (e.kind) {
    case Kind::Accepted: return state_ == SessionState::Accepted ? onAccepted(e.fd) : SessionAction{};
    case Kind::HeaderBytes: return state_ == SessionState::Header ? onHeaderBytes(e.data) : SessionAction{};
    case Kind::HeaderEnded:
        if (state_ != SessionState::Header) return {};
        // A client that connects and leaves without a byte (a TCP health check
        // of the balancer in front) is not a protocol error.
        return headerFailed(e.err == 0 && !setup_->headerBytesSeen, false);
    case Kind::ConnectOk: return state_ == SessionState::Connecting ? onConnected(e.now) : SessionAction{};
    case Kind::ConnectFailed: {
        if (state_ != SessionState::Connecting) return {};
        countConnectFailure(*service(), *setup_->trying, worker_.index, e.err);
        setup_->trying.reset();
        return connectNext();
    }
    case Kind::PreambleSent: return state_ == SessionState::Preamble ? onPreambleSent(e.bytes) : SessionAction{};
    case Kind::Eof: return state_ == SessionState::Relaying ? onEof(e.direction, e.now) : SessionAction{};
    case Kind::Failed: {
        // One side reset or failed: the other side is reset too, both close.
        reason_.noteReset(e.side == Side::Client);
        SessionAction a = close(reason_.reason());
        a.reset = true;
        a.resetSide = otherSide(e.side);
        return a;
    }
    case Kind::TimerFired: return onTimer(e.now);
    case Kind::CloseRequested: break;   // above
    }
    return {};
}

SessionAction SessionCore::close(CloseReason reason) {
    reason_.note(reason);
    state_ = SessionState::Closing;
    return actionOf(SessionAction::Kind::Close);
}

SessionAction SessionCore::onAccepted(int clientFd) {
    // The snapshot is held only while routing; afterwards the session keeps its
    // backend handle alone, so long-lived connections pin no snapshot.
    setup_ = std::make_unique<Setup>();
    setup_->snapshot = worker_.snapshot;
    if (!setup_->snapshot || serviceIndex_ >= setup_->snapshot->services.size()) {
        setup_->snapshot.reset();
        return close(CloseReason::NoBackend);
    }
    const routing::ServiceRoute& svc = *service();
    serviceState_ = svc.state;
    if (telemetry::accessLogEnabled()) {
        access_ = std::make_unique<AccessInfo>();
        startAccessInfo(*access_, clientFd);
    }
    admitted_ = true;
    if (!admitConnection(svc)) return close(CloseReason::ConnectionLimit);
    idleTimeout_ = svc.idleTimeout;
    halfClosedTimeout_ = svc.halfClosedTimeout;
    setup_->addresses = clientAddressesOf(clientFd, svc);
    if (svc.acceptProxy) {
        state_ = SessionState::Header;
        setup_->decoder = std::make_unique<ProxyHeaderDecoder>();
        SessionAction a = actionOf(SessionAction::Kind::ReadHeader);
        a.at = std::chrono::steady_clock::now() + svc.acceptProxyTimeout;
        return a;
    }
    state_ = SessionState::Connecting;
    return connectNext();
}

SessionAction SessionCore::onHeaderBytes(std::span<const uint8_t> data) {
    Setup& s = *setup_;
    s.headerBytesSeen = true;
    ProxyHeaderDecoder& decoder = *s.decoder;
    switch (decoder.feed(data)) {
    case ProxyHeaderDecoder::Status::NeedMore: return actionOf(SessionAction::Kind::ReadHeader);
    case ProxyHeaderDecoder::Status::Error: return headerFailed(false, false);
    case ProxyHeaderDecoder::Status::Done: break;
    }
    // What came after the header is the client's: it goes to the backend first.
    const auto rest = data.subspan(decoder.consumed());
    s.early.assign(reinterpret_cast<const char*>(rest.data()), rest.size());
    // Affinity, hash balancing and the header toward backends follow the
    // client the balancer in front saw (LOCAL and UNKNOWN keep our own).
    adoptProxyHeader(decoder.header(), s.addresses, access_.get());
    s.decoder.reset();
    state_ = SessionState::Connecting;
    return connectNext();
}

SessionAction SessionCore::headerFailed(bool clientGone, bool timedOut) {
    reason_.note(clientGone ? CloseReason::ClientClose : CloseReason::ClientReset);
    countClosedWithoutBackend(*serviceState_, reason_.reason());
    if (!clientGone) {
        countProxyHeaderFailure(*serviceState_, timedOut);
        const routing::ServiceRoute& svc = *service();
        const ProxyHeaderDecoder* decoder = setup_->decoder.get();
        log()->debug("conn {}: service {}: closing: PROXY header {}", id_, svc.name,
                     timedOut ? "not complete within " + config::formatDuration(svc.acceptProxyTimeout)
                     : !decoder || decoder->error().empty() ? std::string("cut short")
                                                            : decoder->error());
    }
    return close(reason_.reason());
}

SessionAction SessionCore::connectNext() {
    Setup& s = *setup_;
    const routing::ServiceRoute& svc = *service();
    const unsigned worker = worker_.index;
    if (s.attemptsMade == 0) s.attempts.clientHash = s.addresses.hash;   // the peer's, or the PROXY header's source
    if (s.attemptsMade > svc.retries) {
        reason_.note(CloseReason::ConnectFailed);
        return connectFailed();
    }
    const routing::Pick pick = worker_.selector.next(svc, s.attempts);
    if (!pick.backend) {
        reason_.note(s.attemptsMade == 0 ? CloseReason::NoBackend : CloseReason::ConnectFailed);
        return connectFailed();
    }
    ++s.attemptsMade;
    s.trying = pick.backend->handle;
    routing::BackendState& b = *s.trying;
    if (s.attemptsMade > 1) countRetry(b, worker, access_.get());
    countConnectAttempt(b, worker);
    s.connectStarted = std::chrono::steady_clock::now();
    SessionAction a = actionOf(SessionAction::Kind::Connect);
    a.backend = &b;
    a.timeout = svc.connectTimeout;
    return a;
}

SessionAction SessionCore::connectFailed() {
    countClosedWithoutBackend(*serviceState_, reason_.reason());
    log()->debug("conn {}: service {}: {}", id_, service()->name, toString(reason_.reason()));
    return close(reason_.reason());
}

SessionAction SessionCore::onConnected(SteadyTime now) {
    Setup& s = *setup_;
    const routing::ServiceRoute& svc = *service();
    countConnectOk(*s.trying, worker_.index, now - s.connectStarted);
    backend_ = std::move(s.trying);
    backend_->active.fetch_add(1, std::memory_order_relaxed);
    connectedAt_ = lastActivity_ = now;
    // The PROXY header goes first, before any client byte, with the bytes that
    // came in with an accepted header (they count as relayed client bytes).
    s.preamble = buildPreamble(svc.proxyProtocol, s.addresses.proxy, s.early);
    if (!s.early.empty()) {
        bytes_.add(0, s.early.size());
        firstBytes_.clientByte(now);
        s.early = {};
    }
    s.snapshot.reset();
    if (s.preamble.empty()) return startRelay();
    state_ = SessionState::Preamble;
    return actionOf(SessionAction::Kind::SendPreamble);
}

SessionAction SessionCore::onPreambleSent(std::size_t n) {
    setup_->preambleSent += n;
    if (setup_->preambleSent < setup_->preamble.size()) return actionOf(SessionAction::Kind::SendPreamble);
    return startRelay();
}

SessionAction SessionCore::startRelay() {
    state_ = SessionState::Relaying;
    setup_.reset();
    SessionAction a = actionOf(SessionAction::Kind::Relay);
    a.at = lastActivity_ + idleTimeout_;
    return a;
}

SessionAction SessionCore::onEof(Direction d, SteadyTime now) {
    Flow& f = flows_[indexOf(d)];
    if (f.done) return {};
    f.done = true;
    // Half-close: pass the EOF on and keep the other direction open, for at
    // most timeouts.half_closed without traffic.
    reason_.note(d == Direction::ClientToBackend ? CloseReason::ClientClose : CloseReason::BackendClose);
    SessionAction a = actionOf(SessionAction::Kind::ShutdownWrite);
    a.direction = d;
    if (flows_[0].done && flows_[1].done) {
        state_ = SessionState::Closing;
        a.thenClose = true;
        return a;
    }
    lastActivity_ = now;
    if (halfClosedTimeout_ < idleTimeout_) {
        a.moveTimer = true;
        a.at = idleDeadline();
    }
    return a;
}

SessionAction SessionCore::onTimer(SteadyTime now) {
    switch (state_) {
    case SessionState::Header: return headerFailed(false, true);
    case SessionState::Relaying: {
        // Reads moved the deadline on without touching the timer: re-arm only now.
        const routing::TimePoint deadline = idleDeadline();
        if (now >= deadline) return close(CloseReason::IdleTimeout);
        SessionAction a = actionOf(SessionAction::Kind::ArmTimer);
        a.at = deadline;
        return a;
    }
    default: return {};   // connecting: the relay arms the idle timer
    }
}

void SessionCore::noteFirstByte(Direction d) {
    const auto now = std::chrono::steady_clock::now();
    if (d == Direction::ClientToBackend) firstBytes_.clientByte(now);
    else firstBytes_.backendByte(*backend_, worker_.index, connectedAt_, now);
}

void SessionCore::finish() {
    if (finished_) return;
    finished_ = true;
    const unsigned worker = worker_.index;
    if (backend_) {
        bytes_.flush(*backend_, worker);
        const CloseReason reason = reason_.reason();
        countSessionEnd(*backend_, worker, reason, firstBytes_.sawBackendByte(), worker_.snapshot, serviceIndex_,
                        connectedAt_);
        log()->debug("conn {}: {} closed ({}), {} bytes in, {} bytes out", id_, backend_->key, toString(reason),
                     bytes_.total(0), bytes_.total(1));
    }
    if (admitted_) releaseConnection(*serviceState_);
    if (access_) {
        const routing::ServiceRoute* svc = service();
        logSessionAccess(*access_, svc ? std::string_view(svc->name) : std::string_view(), backend_.get(),
                         connectedAt_, bytes_.total(0), bytes_.total(1), reason_.reason(), firstBytes_);
    }
}

} // namespace switchyard::proxy
