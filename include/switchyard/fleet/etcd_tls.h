#pragma once

// The TLS client context for https:// etcd endpoints (docs/fleet.md "TLS"):
// etcd's certificate is verified against fleet.ca_file (or the system's CAs)
// and the endpoint's host name; fleet.cert_file and fleet.key_file, when set,
// are the client certificate etcd's --client-cert-auth asks for. Built once at
// start (and by --check): a file that cannot be used is a start-up error that
// names the key and the file, never the key's content.

#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "switchyard/config/config.h"
#include "switchyard/util/result.h"

namespace switchyard::fleet {

Result<std::shared_ptr<boost::asio::ssl::context>> makeEtcdTlsContext(const config::FleetConfig& config);

} // namespace switchyard::fleet
