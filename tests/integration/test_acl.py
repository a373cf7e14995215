"""Access control with a Mosquitto-format ACL file."""

import unittest

from meshmq_harness import (BrokerTestCase, SysWatcher, meshmq_only, puback, pubcomp, publish,
                            pubrec, pubrel, sha512_password_line, subscribe, suback)

ACL = """\
# Rules before the first "user" line apply to anonymous clients only.
topic read public/#
topic readwrite anon/#
topic read $SYS/#

user alice
topic readwrite shared/#
topic read readonly/#
topic write public/#

user bob
topic readwrite shared/#
topic write readonly/#
topic write public/#

# Patterns apply to every client; %u is the client's user name.
pattern readwrite users/%u/#
"""


class AclTest(BrokerTestCase):

    broker_flags = {"allow_anonymous": True, "sys_interval": "1s"}

    @classmethod
    def prepare_broker(cls, broker):
        passwords = broker.path("passwords")
        with open(passwords, "w") as f:
            f.write(sha512_password_line("alice", "alice-pw") + "\n")
            f.write(sha512_password_line("bob", "bob-pw") + "\n")
        acl = broker.path("acl")
        with open(acl, "w") as f:
            f.write(ACL)
        broker.flags.update(password_file=passwords, acl_file=acl)

    def alice(self, **kwargs):
        return self.client(username="alice", password="alice-pw", **kwargs)

    def bob(self, **kwargs):
        return self.client(username="bob", password="bob-pw", **kwargs)

    def raw_user(self, user):
        return self.raw_connected(username=user, password=user + "-pw")

    def test_user_reads_and_writes_own_private_topics(self):
        alice = self.alice()
        self.assertEqual(alice.subscribe("users/alice/#", 1), [1])
        alice.publish("users/alice/notes", b"mine", qos=1)
        self.assertEqual(alice.wait_message("users/alice/notes").payload, b"mine")

    def test_user_cannot_read_another_users_private_topics(self):
        alice = self.alice()
        alice.subscribe([("users/bob/#", 1), ("shared/sentinel", 1)])  # SUBACK checked below
        bob = self.bob()
        bob.publish("users/bob/diary", b"secret", qos=1)
        bob.publish("shared/sentinel", b"sentinel", qos=1)
        alice.wait_message("shared/sentinel")
        self.assertEqual(alice.received("users/bob/diary"), [])

    def test_user_cannot_write_another_users_private_topics(self):
        bob = self.bob()
        bob.subscribe([("users/bob/#", 2), ("shared/sentinel-w", 2)])
        alice = self.raw_user("alice")
        # Denied publishes are acknowledged as usual and silently dropped.
        alice.send(publish("users/bob/inbox", b"forged-1", qos=1, mid=1))
        alice.expect(puback(1))
        alice.send(publish("users/bob/inbox", b"forged-2", qos=2, mid=2))
        alice.expect(pubrec(2))
        alice.send(pubrel(2))
        alice.expect(pubcomp(2))
        alice.send(publish("users/bob/inbox", b"forged-0", qos=0))
        alice.send(publish("shared/sentinel-w", b"sentinel", qos=1, mid=3))
        alice.expect(puback(3))
        alice.ping()  # still connected
        bob.wait_message("shared/sentinel-w")
        self.assertEqual(bob.received("users/bob/inbox"), [])

    def test_anonymous_rules_apply_to_anonymous_clients(self):
        anon = self.client()
        anon.subscribe([("public/#", 1), ("anon/#", 1), ("shared/#", 1)])
        alice = self.alice()
        alice.publish("public/news", b"from-alice", qos=1)  # alice may write public/#
        anon.wait_message("public/news", b"from-alice")

        anon.publish("anon/own", b"anon-readwrite", qos=1)
        anon.wait_message("anon/own", b"anon-readwrite")

        anon.publish("public/news", b"anon-may-not-write", qos=1)
        alice.publish("shared/x", b"anon-may-not-read", qos=1)
        alice.publish("public/news", b"sentinel", qos=1)
        anon.wait_message("public/news", b"sentinel")
        payloads = anon.payloads()
        self.assertNotIn(b"anon-may-not-write", payloads)
        self.assertNotIn(b"anon-may-not-read", payloads)

    def test_anonymous_rules_do_not_apply_to_users(self):
        anon = self.client()
        anon.subscribe([("anon/#", 1), ("public/#", 1)])
        alice = self.alice()
        alice.publish("anon/x", b"alice-may-not-write-anon", qos=1)
        alice.publish("public/sentinel", b"sentinel", qos=1)
        anon.wait_message("public/sentinel")
        self.assertEqual(anon.received("anon/x"), [])

    def test_read_only_and_write_only_topics(self):
        alice = self.alice()
        alice.subscribe([("readonly/#", 1), ("shared/s1", 1)])
        bob = self.bob()
        bob.subscribe([("readonly/#", 1), ("shared/s1", 1)])
        bob.publish("readonly/x", b"bob-writes", qos=1)   # bob: write-only
        alice.publish("readonly/y", b"alice-writes", qos=1)  # alice: read-only -> dropped
        alice.publish("shared/s1", b"sentinel-a", qos=1)
        bob.publish("shared/s1", b"sentinel-b", qos=1)
        alice.wait_message("shared/s1", b"sentinel-b")
        bob.wait_message("shared/s1", b"sentinel-b")
        alice.wait_message("shared/s1", b"sentinel-a")
        self.assertEqual(alice.payloads("readonly/x"), [b"bob-writes"])
        self.assertEqual(alice.payloads("readonly/y"), [])
        self.assertEqual(bob.payloads("readonly/x"), [])  # no read access for bob

    @meshmq_only("Mosquitto 2.0 grants denied subscriptions and filters at delivery instead")
    def test_denied_subscription_gets_0x80(self):
        alice = self.raw_user("alice")
        alice.send(subscribe(1, [("users/alice/#", 1), ("users/bob/#", 1), ("shared/#", 2),
                                 ("readonly/#", 1), ("public/#", 0), ("anon/#", 0)]))
        alice.expect(suback(1, [1, 0x80, 2, 1, 0x80, 0x80]))
        anon = self.raw_connected()
        anon.send(subscribe(2, [("public/#", 1), ("shared/#", 1), ("users/alice/#", 0)]))
        anon.expect(suback(2, [1, 0x80, 0x80]))

    @meshmq_only("meshmq's $SYS/broker/counters/publish_denied and subscribe_denied")
    def test_denials_counted(self):
        sys = SysWatcher(self)
        pub_before = sys.counter_now("publish_denied")
        sub_before = sys.counter_now("subscribe_denied")
        alice = self.raw_user("alice")
        alice.send(publish("users/bob/x", b"no", qos=1, mid=1))
        alice.expect(puback(1))
        alice.send(subscribe(2, [("users/bob/#", 0)]))
        alice.expect(suback(2, [0x80]))
        sys.wait_counter_at_least("publish_denied", pub_before + 1)
        sys.wait_counter_at_least("subscribe_denied", sub_before + 1)


if __name__ == "__main__":
    unittest.main()
