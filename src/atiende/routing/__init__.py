"""The routing engine: queues, agents and their presence, offers, transfers and wrap-up."""
