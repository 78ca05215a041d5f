#include <peerproto/key_rotation.hpp>
#include <peerproto/trust.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {
const pp::sys_milliseconds t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 26}.time_since_epoch()};

pp::crypto::ed25519_keypair key_of(int i) {
  std::array<std::uint8_t, 32> seed{};
  seed[0] = static_cast<std::uint8_t>(i);
  seed[1] = 0x5e;
  return pp::crypto::ed25519_keypair(seed);
}

// The chain of `entity` through keys 0..n (statement i moves key i-1 to key i, effective at t0 + i s).
struct rotating_identity {
  std::string entity = "alice";
  std::vector<pp::crypto::ed25519_keypair> keys;
  std::vector<pp::key_rotation> chain;
  explicit rotating_identity(int n, bool revoke_last = false) {
    for (int i = 0; i <= n; ++i) keys.push_back(key_of(i));
    for (int i = 1; i <= n; ++i) {
      const bool revoke = revoke_last && i == n;
      chain.push_back(pp::make_key_rotation(entity, keys[static_cast<std::size_t>(i - 1)], revoke ? nullptr : &keys[static_cast<std::size_t>(i)],
                                            static_cast<std::uint64_t>(i), {t0 + std::chrono::seconds(i), 3}));
    }
  }
  std::vector<pp::key_rotation> slice(std::size_t from, std::size_t to) const {  // counters from..to
    return {chain.begin() + static_cast<std::ptrdiff_t>(from - 1), chain.begin() + static_cast<std::ptrdiff_t>(to)};
  }
};

pp::result<pp::rotation_applied> follow(pp::trust_store& t, const std::vector<pp::key_rotation>& chain, pp::sys_milliseconds now = t0 + 60s) {
  return t.apply_rotation("alice", chain, now, 3600s, 60s);
}
}  // namespace

TEST(KeyRotation, StatementRoundTripsAndVerifies) {
  rotating_identity id(2, true);
  for (const auto& r : id.chain) {
    const auto back = pp::key_rotation_from_json(pp::to_json(r));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(pp::jcs::canonicalize(pp::to_json(*back)), pp::jcs::canonicalize(pp::to_json(r)));
    EXPECT_TRUE(pp::verify(*back));
  }
  EXPECT_TRUE(id.chain.back().revokes());
}

// Every member is covered by both signatures: changing any one makes the statement fail KR-2.
TEST(KeyRotation, EveryMemberIsSigned) {
  rotating_identity id(1);
  const auto& r = id.chain[0];
  auto changed = r;
  changed.counter = 2;
  EXPECT_FALSE(pp::verify(changed));
  changed = r;
  changed.effective.time += 1ms;
  EXPECT_FALSE(pp::verify(changed));
  changed = r;
  changed.entity_id = "mallory";
  EXPECT_FALSE(pp::verify(changed));
  changed = r;
  changed.new_key = key_of(9).public_key_bytes();  // a key the old one never vouched for
  EXPECT_FALSE(pp::verify(changed));
  changed = r;
  (*changed.new_signature)[0] ^= 1;
  EXPECT_FALSE(pp::verify(changed));
}

TEST(KeyRotation, FormIsStrict) {
  rotating_identity id(2);
  const auto refused = [](json::object o) { return pp::key_rotation_from_json(o).code(); };
  auto o = pp::to_json(id.chain[0]);
  EXPECT_EQ(refused([&] { auto x = o; x["extra"] = 1; return x; }()), pp::errc::invalid_format);
  EXPECT_EQ(refused([&] { auto x = o; x.erase("effective"); return x; }()), pp::errc::invalid_format);
  EXPECT_EQ(refused([&] { auto x = o; x["counter"] = 0; return x; }()), pp::errc::invalid_format);
  EXPECT_EQ(refused([&] { auto x = o; x["counter"] = 1.0; return x; }()), pp::errc::invalid_format);
  EXPECT_EQ(refused([&] { auto x = o; x["old_key"] = json::string(o["old_key"].as_string().c_str()).c_str(); x["new_key"] = x["old_key"]; return x; }()),
            pp::errc::invalid_format);
  EXPECT_EQ(refused([&] { auto x = o; x["new_signature"] = nullptr; return x; }()), pp::errc::invalid_format);
  auto upper = std::string(o["old_key"].as_string());
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_EQ(refused([&] { auto x = o; x["old_key"] = upper; return x; }()), pp::errc::invalid_format);
  EXPECT_EQ(refused([&] { auto x = o; x["schema"] = "peerproto.key_rotation.v2"; return x; }()), pp::errc::invalid_format);

  const auto chain = [](std::vector<pp::key_rotation> c) { return json::object{{"chain", pp::to_json(c)}}; };
  EXPECT_TRUE(pp::parse_rotation_chain(chain(id.chain)));
  EXPECT_EQ(pp::parse_rotation_chain(chain({id.chain[1], id.chain[0]})).code(), pp::errc::invalid_format);  // out of order
  EXPECT_EQ(pp::parse_rotation_chain(chain({})).code(), pp::errc::invalid_format);
  EXPECT_EQ(pp::parse_rotation_chain(chain(id.chain), 1).code(), pp::errc::invalid_format);  // over max_rotation_chain
  rotating_identity revoked(2, true);
  EXPECT_EQ(pp::parse_rotation_chain(chain({revoked.chain[1], id.chain[1]})).code(), pp::errc::invalid_format);
}

// KR-4, KR-5: against a model (the counter applied and the key bound, which may start later in the
// chain: a peer that met the entity after some rotations), any sequence of chain slices moves the
// binding exactly when the slice has a newer statement leaving the bound key; every refusal has
// the rule's code and changes nothing.
RC_GTEST_PROP(KeyRotation, FollowsTheChainAndNeverAppliesAStatementTwice, ()) {
  const auto n = *rc::gen::inRange(1, 6);
  rotating_identity id(n);
  pp::trust_store t(*rc::gen::element(pp::trust_policy::pinned, pp::trust_policy::tofu));
  std::size_t bound = *rc::gen::inRange<std::size_t>(0, static_cast<std::size_t>(n));  // the model: key index bound
  std::size_t applied = 0;                                                              // and counter applied
  t.pin("alice", id.keys[bound].public_key_bytes());
  const auto steps = *rc::gen::container<std::vector<std::pair<int, int>>>(rc::gen::pair(rc::gen::inRange(1, n + 1), rc::gen::inRange(1, n + 1)));
  for (auto [a, b] : steps) {
    const auto from = static_cast<std::size_t>(std::min(a, b)), to = static_cast<std::size_t>(std::max(a, b));
    const auto r = follow(t, id.slice(from, to));
    if (to <= applied) {
      RC_ASSERT(r.code() == pp::errc::replay_detected);
    } else if (from > bound + 1 || to < bound + 1) {
      RC_ASSERT(r.code() == pp::errc::unknown_sender);  // no newer statement leaves the bound key
    } else {
      RC_ASSERT(r.ok());
      RC_ASSERT(r->from_counter == applied);
      applied = bound = to;
      RC_ASSERT(r->to_counter == applied);
    }
    RC_ASSERT(t.key_for("alice") == id.keys[bound].public_key_bytes());
    RC_ASSERT((t.rotation_of("alice") ? t.rotation_of("alice")->counter : 0) == applied);
  }
}

TEST(KeyRotation, RefusalsChangeNothing) {
  rotating_identity id(2);
  pp::trust_store t(pp::trust_policy::tofu);
  t.pin("alice", id.keys[0].public_key_bytes());
  auto forged = id.chain[0];
  (*forged.new_signature)[5] ^= 0x10;
  EXPECT_EQ(follow(t, {forged}).code(), pp::errc::invalid_signature);
  auto other = id.chain[0];
  other.entity_id = "bob";
  EXPECT_EQ(follow(t, {other}).code(), pp::errc::unknown_sender);  // cross-entity
  EXPECT_EQ(follow(t, {id.chain[0]}, t0 - 60s).code(), pp::errc::replay_detected);  // effective 61 s ahead
  EXPECT_EQ(t.key_for("alice"), id.keys[0].public_key_bytes());
  EXPECT_EQ(t.rotation_of("alice"), nullptr);
}

// KR-6: the replaced key is accepted until effective + grace, for handshakes too; earlier keys never.
TEST(KeyRotation, GracePeriodRunsFromTheEffectiveTime) {
  rotating_identity id(2);
  pp::trust_store t(pp::trust_policy::tofu);
  t.pin("alice", id.keys[0].public_key_bytes());
  ASSERT_TRUE(follow(t, id.chain));
  const auto effective = id.chain[1].effective.time;
  const auto k0 = id.keys[0].public_key_bytes(), k1 = id.keys[1].public_key_bytes(), k2 = id.keys[2].public_key_bytes();
  EXPECT_EQ(t.grace_key("alice", effective + 3600s - 1ms), k1);
  EXPECT_EQ(t.grace_key("alice", effective + 3600s), std::nullopt);
  EXPECT_TRUE(t.acceptable("alice", k1, effective + 10s));
  EXPECT_EQ(*t.accept_handshake_key("alice", k1, effective + 10s), pp::trust_store::binding::known);
  EXPECT_EQ(t.key_for("alice"), k2);  // a handshake with the old key does not move the binding back
  EXPECT_FALSE(t.acceptable("alice", k1, effective + 3600s));
  EXPECT_FALSE(t.acceptable("alice", k0, effective));
}

// KR-7: a revocation blocks the entity under every policy until an operator pins a key again.
TEST(KeyRotation, RevocationBlocksUntilAnOperatorPins) {
  rotating_identity id(1, true);
  for (const auto policy : {pp::trust_policy::pinned, pp::trust_policy::tofu, pp::trust_policy::open}) {
    pp::trust_store t(policy);
    t.pin("alice", id.keys[0].public_key_bytes());
    const auto r = follow(t, id.chain);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->to_key, std::nullopt);
    EXPECT_EQ(t.key_for("alice"), std::nullopt);
    EXPECT_EQ(t.accept_handshake_key("alice", key_of(7).public_key_bytes(), t0).code(), pp::errc::unknown_sender);
    EXPECT_EQ(t.accept_handshake_key("alice", id.keys[0].public_key_bytes(), t0).code(), pp::errc::unknown_sender);
    EXPECT_EQ(follow(t, id.chain).code(), pp::errc::unknown_sender);
    t.pin_by_operator("alice", key_of(7).public_key_bytes());
    EXPECT_EQ(*t.accept_handshake_key("alice", key_of(7).public_key_bytes(), t0), pp::trust_store::binding::known);
    EXPECT_EQ(follow(t, id.chain).code(), pp::errc::replay_detected);  // the counter stays
  }
}
