"""Jobs: create and read them (JobService), work them (Worker), batches, the daily quota and the stuck-job sweeper."""
