"""Signals: SIGTERM shuts down gracefully (exit 0), SIGHUP reloads the ACL file (the password
file reload is in test_auth.py)."""

import signal
import unittest

from meshmq_harness import (Broker, BrokerTestCase, MqttClient, RawClient, connack, connect,
                            publish, sha512_password_line, subscribe, unique_id, wait_for)


class SigtermTest(unittest.TestCase):

    def start_broker(self, **flags):
        broker = Broker(**flags)
        self.addCleanup(broker.stop)
        return broker.start()

    def raw(self, broker, **connect_kwargs):
        c = RawClient(broker.port)
        self.addCleanup(c.close)
        c.send(connect(unique_id(), **connect_kwargs))
        c.expect(connack(0, 0))
        return c

    def test_sigterm_with_clients_connected_exits_0_and_closes_connections(self):
        broker = self.start_broker()
        plain = self.raw(broker)
        with_will = self.raw(broker, will_topic="w/x", will_payload=b"bye", will_qos=1)
        persistent = self.raw(broker, clean=False)
        persistent.send(subscribe(1, [("s/#", 1)]))
        persistent.read_packet()
        paho = MqttClient(broker.port)
        self.addCleanup(paho.close)
        self.assertEqual(paho.connect(), 0)
        paho.subscribe("s/#", 1)
        paho.publish("s/x", b"traffic", qos=1)
        paho.wait_message("s/x")

        broker.signal(signal.SIGTERM)
        self.assertEqual(broker.terminate(timeout=10), 0, broker.log_tail())
        for c in (plain, with_will, persistent):
            self.assertTrue(wait_for(lambda: c.is_closed(), timeout=5))
        self.assertTrue(paho.disconnected.wait(5))

    def test_sigterm_idle_broker_exits_0(self):
        broker = self.start_broker()
        broker.signal(signal.SIGTERM)
        self.assertEqual(broker.terminate(timeout=10), 0, broker.log_tail())

    def test_sigterm_after_traffic_exits_0(self):
        broker = self.start_broker()
        c = self.raw(broker)
        c.send(subscribe(1, [("busy/#", 0)]))
        c.read_packet()
        for i in range(200):
            c.send(publish("busy/x", b"%d" % i))
        c.expect(publish("busy/x", b"0"))
        broker.signal(signal.SIGTERM)
        self.assertEqual(broker.terminate(timeout=10), 0, broker.log_tail())


class SighupAclReloadTest(BrokerTestCase):

    @classmethod
    def prepare_broker(cls, broker):
        passwords = broker.path("passwords")
        with open(passwords, "w") as f:
            f.write(sha512_password_line("alice", "alice-pw") + "\n")
        cls.acl = broker.path("acl")
        with open(cls.acl, "w") as f:
            f.write("user alice\ntopic readwrite before/#\n")
        broker.flags.update(password_file=passwords, acl_file=cls.acl)

    def alice_can_use_after_topic(self):
        """One bounded probe: alice publishes to after/x and then to a sentinel she can use;
        True if after/x came back to her before the sentinel."""
        c = self.client(username="alice", password="alice-pw")
        c.subscribe([("after/#", 1), ("before/#", 1)])  # after/#: 0x80 or granted, by broker
        c.publish("after/x", b"probe", qos=1)
        c.publish("before/sentinel", b"sentinel", qos=1)
        c.wait_message("before/sentinel")
        c.disconnect()
        return bool(c.received("after/x"))

    def test_sighup_reloads_acl_file(self):
        self.assertFalse(self.alice_can_use_after_topic())
        kept = self.raw_connected(username="alice", password="alice-pw")
        with open(self.acl, "w") as f:
            f.write("user alice\ntopic readwrite before/#\ntopic readwrite after/#\n")
        self.broker.signal(signal.SIGHUP)
        wait_for(self.alice_can_use_after_topic, interval=0.05,
                 message="ACL change not applied after SIGHUP")
        self.assertTrue(self.broker.running())
        kept.ping()  # existing connections survive a reload


if __name__ == "__main__":
    unittest.main()
