// The Redis store's replication gate (src/store/redis/replication_gate.hpp) as a state machine:
// which replicated writes go now and which wait, driven by the answers of the writes in flight.
#include "store/redis/replication_gate.hpp"

#include <boost/test/unit_test.hpp>

#include <vector>

using apollo_oauth::redis::replication_gate;

BOOST_AUTO_TEST_SUITE(replication_gate_states)

// Until a WAIT falls short every write goes at once, pipelined: the replicas are assumed there.
BOOST_AUTO_TEST_CASE(writes_go_at_once_while_the_replicas_answer) {
    replication_gate<int> gate;
    for (int write = 1; write <= 3; ++write) {
        BOOST_TEST(gate.admit(write).value_or(0) == write);
    }
    const auto released = gate.answered(true, true);
    BOOST_TEST(released.writes.empty());
    BOOST_TEST(gate.admit(4).value_or(0) == 4);
}

// After a WAIT that fell short, one write at a time is in flight: the ones that come meanwhile are
// held, and fail with it when it falls short too, unsent.
BOOST_AUTO_TEST_CASE(after_a_short_wait_writes_are_held_and_fail_with_the_probe) {
    replication_gate<int> gate;
    BOOST_TEST(gate.admit(1).value_or(0) == 1);
    BOOST_TEST(gate.answered(true, false).writes.empty());
    BOOST_TEST(gate.admit(2).value_or(0) == 2);  // the probe: nothing in flight
    BOOST_TEST(!gate.admit(3).has_value());
    BOOST_TEST(!gate.admit(4).has_value());
    const auto released = gate.answered(true, false);
    BOOST_TEST(!released.send);
    BOOST_TEST(released.writes == (std::vector<int>{3, 4}), boost::test_tools::per_element());
    BOOST_TEST(gate.admit(5).value_or(0) == 5);  // the next probe
    BOOST_TEST(!gate.admit(6).has_value());
}

// A probe acknowledged: the replicas are back, the held writes go (in the order they came), and
// the ones after them are no longer held.
BOOST_AUTO_TEST_CASE(an_acknowledged_probe_sends_what_was_held) {
    replication_gate<int> gate;
    BOOST_TEST(gate.admit(1).value_or(0) == 1);
    BOOST_TEST(gate.answered(true, false).writes.empty());
    BOOST_TEST(gate.admit(2).value_or(0) == 2);
    BOOST_TEST(!gate.admit(3).has_value());
    BOOST_TEST(!gate.admit(4).has_value());
    const auto released = gate.answered(true, true);
    BOOST_TEST(released.send);
    BOOST_TEST(released.writes == (std::vector<int>{3, 4}), boost::test_tools::per_element());
    BOOST_TEST(gate.admit(5).value_or(0) == 5);  // 3 and 4 are in flight, and that holds nothing back
    // 3, 4 and 5 answered: nothing was held meanwhile.
    for (int answer = 0; answer < 3; ++answer) {
        BOOST_TEST(gate.answered(true, true).writes.empty());
    }
}

// Writes sent together before the replicas went: the first short WAIT makes the gate hold; one of
// the others acknowledged (the replica is back) releases the held ones to be sent.
BOOST_AUTO_TEST_CASE(writes_in_flight_when_the_replicas_go_answer_the_held_ones) {
    replication_gate<int> gate;
    BOOST_TEST(gate.admit(1).value_or(0) == 1);
    BOOST_TEST(gate.admit(2).value_or(0) == 2);
    BOOST_TEST(gate.admit(3).value_or(0) == 3);
    BOOST_TEST(gate.answered(true, false).writes.empty());  // 1 fell short
    BOOST_TEST(!gate.admit(4).has_value());                 // 2 and 3 still in flight
    const auto failed = gate.answered(true, false);         // 2 fell short too
    BOOST_TEST(!failed.send);
    BOOST_TEST(failed.writes == (std::vector<int>{4}), boost::test_tools::per_element());
    BOOST_TEST(!gate.admit(5).has_value());  // 3 is still in flight
    const auto sent = gate.answered(true, true);
    BOOST_TEST(sent.send);
    BOOST_TEST(sent.writes == (std::vector<int>{5}), boost::test_tools::per_element());
}

// A transport error says nothing about the replicas: the gate stays as it was, and while it holds,
// what it held fails (those writes would have gone on the connection that just failed).
BOOST_AUTO_TEST_CASE(a_transport_error_leaves_the_state_as_it_was) {
    replication_gate<int> gate;
    BOOST_TEST(gate.admit(1).value_or(0) == 1);
    BOOST_TEST(gate.answered(false, false).writes.empty());
    BOOST_TEST(gate.admit(2).value_or(0) == 2);
    BOOST_TEST(gate.admit(3).value_or(0) == 3);  // not holding: no WAIT has fallen short
    BOOST_TEST(gate.answered(true, false).writes.empty());
    BOOST_TEST(!gate.admit(4).has_value());
    const auto released = gate.answered(false, false);
    BOOST_TEST(!released.send);
    BOOST_TEST(released.writes == (std::vector<int>{4}), boost::test_tools::per_element());
    BOOST_TEST(gate.admit(5).value_or(0) == 5);  // a probe: nothing in flight
    BOOST_TEST(!gate.admit(6).has_value());      // still holding: the last WAIT answered fell short
}

// A write that nothing would retry (a mark-reauthorization) is never held: it goes at once, and
// counts as in flight like any other.
BOOST_AUTO_TEST_CASE(a_write_that_may_not_be_held_goes_at_once) {
    replication_gate<int> gate;
    BOOST_TEST(gate.admit(1).value_or(0) == 1);
    BOOST_TEST(gate.answered(true, false).writes.empty());
    BOOST_TEST(gate.admit(2).value_or(0) == 2);
    BOOST_TEST(gate.admit(3, false).value_or(0) == 3);
    BOOST_TEST(!gate.admit(4).has_value());
    BOOST_TEST(gate.answered(true, false).writes.size() == 1u);  // 2 answered: 4 fails
    BOOST_TEST(!gate.admit(5).has_value());                      // 3 is still in flight
}

BOOST_AUTO_TEST_SUITE_END()
