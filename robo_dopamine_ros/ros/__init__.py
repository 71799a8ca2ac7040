"""The ROS 2 layer: the reward node and its parts. The only package folder importing rclpy."""
