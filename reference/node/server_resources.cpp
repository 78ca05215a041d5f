// The node's GET resources (HTTP-4..HTTP-7, KR-10, metrics, the OpenAPI document).
#include "server.hpp"

#include "openapi.hpp"

#include <peerproto/fault.hpp>
#include <peerproto/key_file.hpp>

namespace peerproto::node {
namespace asio = boost::asio;

void server::get(const asio::any_io_executor& ex, std::string path, std::function<void(std::optional<resource>)> done) {
  if (!transport_) return done(resource_of(path));
  asio::post(ioc_, [this, ex, path = std::move(path), done = std::move(done)]() mutable {
    asio::post(ex, [done = std::move(done), r = resource_of(path)]() mutable { done(std::move(r)); });
  });
}

std::optional<server::resource> server::resource_of(std::string_view path) {
  const auto json = [](const boost::json::value& v) { return resource{200, "application/json", boost::json::serialize(v)}; };
  if (path == "/health") return json(boost::json::object{{"status", "ok"}});
  if (path == "/ready")
    return draining_ ? resource{503, "application/json", R"({"status":"draining"})"} : json(boost::json::object{{"status", "ready"}});
  if (path == "/public-key")
    return json(boost::json::object{{"entity_id", id_->entity_id},
                                    {"public_key", hex_encode(id_->key.public_key_bytes())},
                                    {"fingerprint", fingerprint(id_->key.public_key_bytes())}});
  if (path == "/key-rotation")  // KR-10
    return json(boost::json::object{{"entity_id", id_->entity_id}, {"chain", to_json(own_chain_)}});
  if (path == "/capabilities" && !PEERPROTO_FAULT(no_capabilities)) return json(capabilities(engine_opt_, handlers_, limits_));
  if (path == "/metrics") {
    std::size_t tasks = 0;
    try {
      tasks = store_->task_count();
    } catch (const store_error&) {
    }
    return resource{200, "text/plain; version=0.0.4",
                    metrics_.render({engine_->session_count(), connection_count(), tasks, !draining_})};
  }
  if (path == "/openapi.json") return resource{200, "application/json", std::string(openapi_json)};
  return std::nullopt;
}

}  // namespace peerproto::node
