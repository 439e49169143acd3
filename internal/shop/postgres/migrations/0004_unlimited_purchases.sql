-- Purchases are counted per user only for products with a per-user limit,
-- which need the count at every order; a product without one is answered
-- from its orders, and the rows counted for it before would go stale.
DELETE FROM user_purchases
WHERE product_id IN (SELECT id FROM products WHERE per_user_limit = 0);
