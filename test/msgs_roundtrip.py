#!/usr/bin/env python3
"""Every vla_msgs message type crosses a real master with every field intact."""

import sys
import threading
import unittest
from pathlib import Path

import rospy
import rostest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from msg_fill import fill, message_classes

TIMEOUT_S = 10.0


class MessagesRoundTrip(unittest.TestCase):
    def test_every_message_arrives_intact(self):
        for name, cls in message_classes().items():
            with self.subTest(message=name):
                sent = fill(cls())
                received = []
                arrived = threading.Event()

                def on_message(msg, received=received, arrived=arrived):
                    received.append(msg)
                    arrived.set()

                topic = f"msgs_roundtrip/{name}"
                sub = rospy.Subscriber(topic, cls, on_message, queue_size=1)
                pub = rospy.Publisher(topic, cls, queue_size=1, latch=True)
                pub.publish(sent)
                self.assertTrue(arrived.wait(TIMEOUT_S), f"{name} never arrived")
                self.assertEqual(received[0], sent)
                sub.unregister()
                pub.unregister()


if __name__ == "__main__":
    rospy.init_node("msgs_roundtrip")
    rostest.rosrun("vla_deployment", "msgs_roundtrip", MessagesRoundTrip)
