"""samay-predict-api: the synchronous scoring API (API Gateway -> Lambda -> endpoint)."""
