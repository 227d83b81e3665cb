-- POST a patient (the Authorization header is given on the command line).
wrk.method = "POST"
wrk.body = '{"firstName":"Louis","lastName":"Pasteur","email":"louis@example.fr"}'
wrk.headers["Content-Type"] = "application/json"
