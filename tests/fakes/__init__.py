"""Small fake servers on 127.0.0.1 that speak the outside services' HTTP APIs."""
