"""The campaign engine (seed: marketing-service-readme.md): campaigns, audiences and tasks that listen to
domain events, each user's progress, exactly-once completion per period, and the grant pipeline that turns a
completion into a reward through the rewards capability."""
