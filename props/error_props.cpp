#include <peerproto/error.hpp>

#include <gtest/gtest.h>

namespace pp = peerproto;

TEST(Errc, EveryProtocolCodeHasWireNameStatusAndMessage) {
  const std::pair<pp::errc, int> statuses[] = {
      {pp::errc::invalid_format, 400},       {pp::errc::missing_fields, 400},
      {pp::errc::invalid_version, 400},      {pp::errc::unsupported_message_type, 400},
      {pp::errc::invalid_signature, 401},    {pp::errc::unknown_sender, 401},
      {pp::errc::challenge_invalid, 401},    {pp::errc::challenge_expired, 401},
      {pp::errc::session_not_found, 404},    {pp::errc::replay_detected, 409},
      {pp::errc::sequence_error, 409},       {pp::errc::handshake_in_progress, 409},
      {pp::errc::invalid_state, 409},        {pp::errc::encryption_not_ready, 409},
      {pp::errc::session_expired, 410},      {pp::errc::payload_too_large, 413},
      {pp::errc::decryption_failed, 422},    {pp::errc::chunk_error, 422},
      {pp::errc::encryption_required, 426},  {pp::errc::rate_limited, 429},
      {pp::errc::internal_error, 500},
  };
  for (const auto& [code, status] : statuses) {
    EXPECT_EQ(pp::http_status(code), status) << pp::wire_name(code);
    EXPECT_FALSE(pp::wire_name(code).empty());
    EXPECT_EQ(pp::errc_from_wire_name(pp::wire_name(code)), code);
    const std::error_code ec = code;  // is_error_code_enum
    EXPECT_STREQ(ec.category().name(), "peerproto");
    EXPECT_FALSE(ec.message().empty());
  }
  EXPECT_EQ(pp::wire_name(pp::errc::invalid_format), "INVALID_FORMAT");
  EXPECT_EQ(pp::wire_name(pp::errc::rate_limited), "RATE_LIMITED");
  EXPECT_TRUE(pp::wire_name(pp::errc::invalid_argument).empty());  // library-level, never on the wire
  EXPECT_FALSE(pp::errc_from_wire_name("").has_value());
  EXPECT_FALSE(pp::errc_from_wire_name("invalid_format").has_value());
}

TEST(Errc, ProtocolErrorCarriesTheCode) {
  try {
    throw pp::protocol_error(pp::failure{pp::errc::chunk_error, "hash mismatch"});
  } catch (const pp::protocol_error& e) {
    EXPECT_EQ(e.code_value(), pp::errc::chunk_error);
    EXPECT_NE(std::string(e.what()).find("hash mismatch"), std::string::npos);
  }
}

TEST(Errc, ConversionFromErrorCodesIsChecked) {
  EXPECT_EQ(pp::to_errc(pp::make_error_code(pp::errc::session_expired)), pp::errc::session_expired);
  // Another category's number is never taken for one of ours.
  EXPECT_EQ(pp::to_errc(std::make_error_code(std::errc::invalid_argument)), pp::errc::internal_error);
  EXPECT_EQ(pp::to_errc(std::error_code(999, pp::error_category())), pp::errc::internal_error);
  const auto f = pp::to_failure(pp::make_error_code(pp::errc::rate_limited), "cannot send: ");
  EXPECT_EQ(f.code, pp::errc::rate_limited);
  EXPECT_EQ(f.message, "cannot send: too many messages; retry later");
}
