"""Synthetic three-camera manipulation episodes with known ground-truth progress.

Real robot bags with per-frame progress labels are rare, and the node, bag replay and benchmark
need episodes whose correct answer is known. This renderer draws a pick-and-place episode (a
gripper moves a block onto a target square) from a front camera and two wrist cameras.

The scene is a pure function of one task state ``s`` in [0, 1] (reach, grasp, lift, carry,
place, release, retreat), and ``s`` *is* the ground-truth progress. Progress is therefore
visible only through the scene (where the gripper and block are, whether the fingers are
closed), never as text or a bar. Outcomes are state trajectories over time: ``success`` goes to
1, ``stall`` freezes midway, ``regress`` carries the block back, and ``fail`` misses the grasp
(the fingers close beside the block; the attempt earns no grasp credit, so progress stays at the
reach value and then falls as the gripper retreats).

Lighting, colours, positions and clutter are drawn from the seed, and rendering is deterministic
for a seed. Drawing uses OpenCV primitives on a pre-rendered static background, so a 90-frame
320x240 episode renders in a fraction of a second.

One job per module: ``spec`` (what to render, outcomes, the rendered episode and its labels),
``scene`` (task state -> scene), ``trajectory`` (outcome -> task state per frame), ``keyframes``
(sub-task segments), ``renderer`` (the three cameras), ``episode`` (:func:`render_episode`),
``writer`` (upstream's raw-data files) and ``interactive`` (one scene at any state, for RL).
"""
