"""Real clients across protocol versions: paho MQTTv5 and 3.1.1, mosquitto_pub / mosquitto_sub
with -V mqttv5 and -D properties. Messages flow 3.1.1 -> 5 and 5 -> 3.1.1; a v5 publisher's
properties reach v5 subscribers and are simply absent for 3.1.1 ones."""

import socket
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from meshmq_harness import BrokerTestCase, connack, connect, unique_id, v5_props

FORMAT = "%t|%p|%P|%C|%R|%D|%F"  # mosquitto_sub: topic, payload and the v5 properties


def line(topic, payload, user="", content_type="", response_topic="", correlation="",
         payload_format=""):
    """The line mosquitto_sub -F FORMAT prints; absent properties print as nothing."""
    return "|".join((topic, payload, user, content_type, response_topic, correlation,
                     payload_format))


class InteropTest(BrokerTestCase):

    def v5(self, **kwargs):
        return self.client(protocol=mqtt.MQTTv5, **kwargs)

    def lines_without_probes(self, sub):
        return [line for line in sub.lines() if "probe" not in line]

    # -- paho v5 ---------------------------------------------------------------------------

    def test_paho_v5_request_response(self):
        requests, replies = self.topic("requests"), self.topic("replies/requester-1")
        responder = self.v5()
        self.assertEqual(responder.subscribe(requests, 1), [1])
        requester = self.v5()
        self.assertEqual(requester.subscribe(replies, 1), [1])
        requester.publish(requests, b"what time is it?", qos=1,
                          properties=v5_props("PUBLISH", ResponseTopic=replies,
                                              CorrelationData=b"\x00req-42\xff"))
        request = responder.wait_message(requests)
        self.assertEqual(request.properties.ResponseTopic, replies)
        self.assertEqual(request.properties.CorrelationData, b"\x00req-42\xff")
        responder.publish(request.properties.ResponseTopic, b"noon", qos=1,
                          properties=v5_props("PUBLISH",
                                              CorrelationData=request.properties.CorrelationData))
        reply = requester.wait_message(replies)
        self.assertEqual(reply.payload, b"noon")
        self.assertEqual(reply.properties.CorrelationData, b"\x00req-42\xff")

    def test_paho_v5_user_properties_in_order(self):
        t = self.topic()
        user = [("z", "1"), ("a", "2"), ("z", "1"), ("m", "")]
        sub = self.v5()
        sub.subscribe(t, 1)
        pub = self.v5()
        pub.publish(t, b"x", qos=1, properties=v5_props("PUBLISH", UserProperty=user,
                                                         ContentType="text/plain",
                                                         PayloadFormatIndicator=1))
        msg = sub.wait_message(t)
        self.assertEqual(msg.properties.UserProperty, user)
        self.assertEqual(msg.properties.ContentType, "text/plain")
        self.assertEqual(msg.properties.PayloadFormatIndicator, 1)

    def test_paho_v5_connack_suback_and_session(self):
        t, client_id = self.topic(), unique_id("p5")
        first = self.v5(client_id=client_id,
                        properties=v5_props("CONNECT", SessionExpiryInterval=60))
        self.assertEqual(first.session_present, 0)
        self.assertTrue(hasattr(first.connack_props, "ReceiveMaximum"), first.connack_props)
        granted = first.subscribe([(t, SubscribeOptions(qos=2, noLocal=True)),
                                   (t + "/x", SubscribeOptions(qos=1))])
        self.assertEqual(granted, [2, 1])
        other = self.v5()
        first.publish(t, b"own", qos=1)  # No Local: not for us
        other.publish(t, b"sentinel", qos=1)
        first.wait_message(t, b"sentinel")
        self.assertEqual(first.payloads(t), [b"sentinel"])
        first.disconnect()
        other.publish(t, b"queued", qos=1)
        again = self.v5(client_id=client_id, clean_session=False,
                        properties=v5_props("CONNECT", SessionExpiryInterval=0))
        self.assertEqual(again.session_present, 1)
        again.wait_message(t, b"queued")
        self.assertEqual(again.payloads(t), [b"queued"])

    def test_paho_v5_topic_alias_resolved_for_311_subscriber(self):
        t = self.topic()
        sub = self.client()
        sub.subscribe(t, 1)
        pub = self.v5()
        pub.publish(t, b"set", qos=1, properties=v5_props("PUBLISH", TopicAlias=1))
        pub.publish("", b"use", qos=1, properties=v5_props("PUBLISH", TopicAlias=1))
        sub.wait_count(2, t)
        self.assertEqual(sub.payloads(t), [b"set", b"use"])

    # -- 3.1.1 <-> 5 -----------------------------------------------------------------------

    def test_paho_311_subscriber_gets_message_from_v5_publisher_with_properties(self):
        t = self.topic()
        sub = self.client()
        self.assertEqual(sub.subscribe(t, 2), [2])
        pub = self.v5()
        for qos in (0, 1, 2):
            pub.publish(t, b"qos%d" % qos, qos=qos, properties=v5_props(
                "PUBLISH", UserProperty=[("k", "v")], ResponseTopic="r", CorrelationData=b"c",
                MessageExpiryInterval=60, ContentType="text/plain"))
        msgs = sub.wait_count(3, t)
        self.assertEqual(sorted((m.payload, m.qos) for m in msgs),
                         [(b"qos0", 0), (b"qos1", 1), (b"qos2", 2)])

    def test_paho_v5_subscriber_gets_message_from_311_publisher(self):
        t = self.topic()
        sub = self.v5()
        sub.subscribe(t, 2)
        self.client().publish(t, b"from-311", qos=2)
        msg = sub.wait_message(t)
        self.assertEqual((msg.payload, msg.qos), (b"from-311", 2))
        self.assertFalse(hasattr(msg.properties, "UserProperty"))

    def test_mosquitto_sub_v5_receives_from_paho_311_publisher(self):
        t = self.topic()
        sub = self.mosquitto_sub("-V", "mqttv5", "-t", t, "-q", "1", "-F", FORMAT)
        self.wait_subscribed(sub, t)
        self.client().publish(t, b"plain", qos=1)
        sub.wait_line(line(t, "plain"))  # no properties invented
        self.assertEqual(self.lines_without_probes(sub), [line(t, "plain")])

    def test_mosquitto_pub_v5_properties_to_mosquitto_sub_v5_and_paho_311(self):
        t = self.topic()
        sub = self.mosquitto_sub("-V", "mqttv5", "-t", t, "-q", "1", "-F", FORMAT)
        self.wait_subscribed(sub, t)
        old = self.client()
        old.subscribe(t, 1)
        self.mosquitto_pub("-V", "mqttv5", "-t", t, "-m", "hello", "-q", "1",
                           "-D", "publish", "user-property", "k1", "v1",
                           "-D", "publish", "user-property", "k0", "v0",
                           "-D", "publish", "content-type", "text/x",
                           "-D", "publish", "response-topic", "re/1",
                           "-D", "publish", "correlation-data", "abc",
                           "-D", "publish", "payload-format-indicator", "1")
        expected = line(t, "hello", "k1:v1 k0:v0", "text/x", "re/1", "abc", "1")
        sub.wait_line(expected)
        self.assertEqual(self.lines_without_probes(sub), [expected])
        self.assertEqual(old.wait_message(t).payload, b"hello")

    def test_mosquitto_pub_311_to_mosquitto_sub_v5_retained(self):
        t = self.topic()
        self.mosquitto_pub("-V", "mqttv311", "-t", t, "-m", "kept", "-r", "-q", "1")
        self.addCleanup(self.mosquitto_pub, "-t", t, "-r", "-n")
        sub = self.mosquitto_sub("-V", "mqttv5", "-t", t, "-C", "1", "-F", "%r|" + FORMAT)
        self.assertEqual(sub.wait_exit(), 0)
        self.assertEqual(sub.lines(), ["1|" + line(t, "kept")])

    def test_v5_retained_with_properties_to_both_versions(self):
        t = self.topic()
        self.mosquitto_pub("-V", "mqttv5", "-t", t, "-m", "kept", "-r", "-q", "1",
                           "-D", "publish", "user-property", "k", "v")
        self.addCleanup(self.mosquitto_pub, "-t", t, "-r", "-n")
        new = self.mosquitto_sub("-V", "mqttv5", "-t", t, "-C", "1", "-F", "%r|" + FORMAT)
        self.assertEqual(new.wait_exit(), 0)
        self.assertEqual(new.lines(), ["1|" + line(t, "kept", "k:v")])
        old = self.client()
        old.subscribe(t, 1)
        msg = old.wait_message(t)
        self.assertEqual((msg.payload, msg.retain), (b"kept", True))

    def test_311_will_reaches_v5_subscriber(self):
        t = self.topic()
        sub = self.v5()
        sub.subscribe(t, 1)
        c = self.raw()
        c.send(connect(unique_id(), will_topic=t, will_payload=b"311-gone", will_qos=1))
        c.expect(connack(0, 0))
        c.abort()
        msg = sub.wait_message(t)
        self.assertEqual((msg.payload, msg.qos), (b"311-gone", 1))

    def test_paho_v5_will_with_properties_reaches_mosquitto_sub_v5(self):
        t = self.topic()
        sub = self.mosquitto_sub("-V", "mqttv5", "-t", t, "-q", "1", "-F", FORMAT)
        self.wait_subscribed(sub, t)
        dying = self.v5(will=(t, b"v5-gone", 1, False, v5_props(
            "WILLMESSAGE", UserProperty=[("why", "crash")], ContentType="text/plain")))
        dying.c.socket().shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the will is due
        sub.wait_line(line(t, "v5-gone", "why:crash", "text/plain"))


if __name__ == "__main__":
    unittest.main()
