"""Pipeline stages: each module reads its inputs and params, calls the core library, writes its
outputs atomically and records the run in MLflow. ``tasks.stages.STAGES`` maps names to them."""
