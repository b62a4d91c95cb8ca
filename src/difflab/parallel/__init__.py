"""Several processes: torch.distributed setup and collectives, DDP/FSDP2 sharding."""
