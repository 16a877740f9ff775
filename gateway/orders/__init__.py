"""Order financing (订单贷款): batches of pending orders on ORDER_LOAN cases, the bank's decision
on each batch, settlement sweeps and overdue orders."""

from gateway.orders.service import BatchAndCase, OrderFinancing

__all__ = ["BatchAndCase", "OrderFinancing"]
