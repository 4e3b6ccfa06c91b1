#include "switchyard/fleet/etcd_tls.h"

#include <fmt/format.h>

#include "switchyard/util/secret_file.h"

namespace switchyard::fleet {

namespace ssl = boost::asio::ssl;
using R = Result<std::shared_ptr<ssl::context>>;

R makeEtcdTlsContext(const config::FleetConfig& config) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                             ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                         ec);
    context->set_verify_mode(ssl::verify_peer, ec);
    if (config.caFile.empty()) context->set_default_verify_paths(ec);
    else if (context->load_verify_file(config.caFile, ec); ec)
        return R::failure(fmt::format("fleet.ca_file {}: not a usable CA certificate file (PEM): {}", config.caFile,
                                      ec.message()));
    if (!config.certFile.empty()) {
        if (context->use_certificate_chain_file(config.certFile, ec); ec)
            return R::failure(fmt::format("fleet.cert_file {}: not a usable certificate file (PEM): {}",
                                          config.certFile, ec.message()));
        // A private key: owner-only, like every secret the daemon reads.
        auto key = readSecretFile(config.keyFile, "fleet.key_file", 64 * 1024);
        if (!key) return R(key.errors());
        if (context->use_private_key(boost::asio::buffer(key.value()), ssl::context::pem, ec); ec)
            return R::failure(fmt::format("fleet.key_file {}: not a usable private key (PEM): {}", config.keyFile,
                                          ec.message()));
        if (SSL_CTX_check_private_key(context->native_handle()) != 1)
            return R::failure(fmt::format("fleet.key_file {}: does not match the certificate in fleet.cert_file {}",
                                          config.keyFile, config.certFile));
    }
    return context;
}

} // namespace switchyard::fleet
