// HTTP-9: the OpenAPI 3 description served at /openapi.json.
#pragma once

#include <string_view>

namespace peerproto::node {

inline constexpr std::string_view openapi_json = R"json({
  "openapi": "3.0.3",
  "info": {"title": "peerproto-node", "version": "0.1.0",
           "description": "Reference node of the peerproto protocol. Envelopes are defined in docs/SPEC.md."},
  "paths": {
    "/message": {"post": {
      "summary": "Deliver one envelope (SPEC §16.1)",
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
      "responses": {
        "200": {"description": "the reply, an ack, or a handshake_ack", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
        "400": {"description": "INVALID_FORMAT, MISSING_FIELDS, INVALID_VERSION, UNSUPPORTED_MESSAGE_TYPE; or an empty body for an error envelope sent as a request"},
        "401": {"description": "INVALID_SIGNATURE, UNKNOWN_SENDER, CHALLENGE_INVALID, CHALLENGE_EXPIRED"},
        "404": {"description": "SESSION_NOT_FOUND"},
        "409": {"description": "REPLAY_DETECTED, SEQUENCE_ERROR, HANDSHAKE_IN_PROGRESS, INVALID_STATE"},
        "410": {"description": "SESSION_EXPIRED"},
        "413": {"description": "PAYLOAD_TOO_LARGE"},
        "422": {"description": "DECRYPTION_FAILED, CHUNK_ERROR"},
        "426": {"description": "ENCRYPTION_REQUIRED"},
        "429": {"description": "RATE_LIMITED, with a Retry-After header", "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
        "500": {"description": "INTERNAL_ERROR: a fault of the node itself, never of the input"}}}},
    "/ws": {"get": {"summary": "WebSocket upgrade (SPEC §16.2): one envelope per text message", "responses": {"101": {"description": "switching protocols"}}}},
    "/health": {"get": {"summary": "200 while the process runs", "responses": {"200": {"description": "alive"}}}},
    "/ready": {"get": {"summary": "200 when accepting messages, 503 when draining", "responses": {"200": {"description": "ready"}, "503": {"description": "draining"}}}},
    "/public-key": {"get": {"summary": "the node's identity", "responses": {"200": {"description": "{entity_id, public_key, fingerprint}"}}}},
    "/capabilities": {"get": {"summary": "versions, suites, message types and limits (MSG-7)", "responses": {"200": {"description": "capabilities"}}}},
    "/metrics": {"get": {"summary": "Prometheus text format 0.0.4", "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}}}},
    "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI 3"}}}}
  },
  "components": {"schemas": {"Envelope": {"type": "object",
    "required": ["version", "msg_type", "sender_id", "recipient_id", "timestamp", "nonce"],
    "properties": {
      "version": {"type": "string"}, "msg_type": {"type": "string"}, "sender_id": {"type": "string"},
      "recipient_id": {"type": "string"}, "timestamp": {"type": "string"}, "nonce": {"type": "string"},
      "session_id": {"type": "string"}, "sequence_num": {"type": "integer"}, "payload": {"type": "object"},
      "encrypted_payload": {"type": "string"}, "signature": {"type": "string"}}}}}
})json";

}  // namespace peerproto::node
